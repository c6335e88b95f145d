import { closeSync, fsync, openSync } from 'node:fs';

/** Flushes a file's written data to the disk (fsync(2)), off the event loop. */
export type FileSync = (fd: number) => Promise<void>;

const fsyncInThreadPool: FileSync = (fd) => new Promise((resolve, reject) => fsync(fd, (error) => (error ? reject(error) : resolve())));

/**
 * Makes the state store's commits durable without holding up the event loop. SQLite commits in
 * WAL mode with synchronous=NORMAL: a commit is in the write-ahead log, in the kernel's page
 * cache, when it returns (a crash of the agent loses nothing; a power cut could). This syncs the
 * log file to the disk in Node's thread pool, one fsync for every commit made since the previous
 * fsync began (a group commit), and says when a commit has reached the disk. SQLite syncs the log
 * itself before a checkpoint copies it into the database, and the database after.
 *
 * Whatever must survive a power cut waits for `durable()`: an event before a watcher gets it, an
 * answer before the client gets it, a change of the host (a container, a network) before it is
 * made after the intent was written.
 */
export class GroupCommit {
  /**
   * Commits made so far, and how many of them are known to be on the disk. One to begin with:
   * what the log holds when the store opens (an agent killed before its fsync left it) is synced
   * by the first fsync too.
   */
  private committed = 1;
  private synced = 0;
  private inFlight: Promise<void> | undefined;
  private fd: number | undefined;
  private syncs = 0;
  private closed = false;

  /**
   * `walPath`: the write-ahead log's file, or undefined for a store with none (in memory), whose
   * commits are as durable as they will be when they return.
   */
  constructor(
    private readonly walPath: string | undefined,
    private readonly sync: FileSync = fsyncInThreadPool,
    /** Hears how long each fsync took, its wait for a thread of the pool included (the metrics). */
    private readonly onSynced?: (seconds: number) => void,
  ) {}

  /** A transaction has committed. */
  committedOne(): void {
    this.committed++;
  }

  /**
   * Resolves once every commit made before the call is on the disk; rejects with the error of the
   * fsync that should have put it there (the store then counts as failing).
   */
  async durable(): Promise<void> {
    const target = this.committed;
    while (this.synced < target) {
      // An fsync that began before the commits waited for does not cover them: wait for it to
      // end, then one fsync covers every commit made until then (the waiters' and others').
      if (this.inFlight) {
        await this.inFlight.catch(() => undefined);
        continue;
      }
      const covers = this.committed;
      const flight = this.syncLog().then(() => {
        this.synced = Math.max(this.synced, covers);
      });
      this.inFlight = flight;
      try {
        await flight;
      } finally {
        if (this.inFlight === flight) this.inFlight = undefined;
      }
    }
  }

  /** How many fsyncs have been made (for the metrics and tests). */
  get syncCount(): number {
    return this.syncs;
  }

  private async syncLog(): Promise<void> {
    if (this.walPath === undefined || this.closed) return;
    if (this.fd === undefined) {
      try {
        this.fd = openSync(this.walPath, 'r');
      } catch (error) {
        // No log file: no commit is waiting in one.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
    }
    this.syncs++;
    const started = performance.now();
    await this.sync(this.fd);
    try {
      this.onSynced?.((performance.now() - started) / 1000);
    } catch {
      // What hears the duration cannot make the fsync count as failed (the store would refuse writes).
    }
  }

  /** Closes the log file, once an fsync in flight has ended. */
  close(): void {
    this.closed = true;
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined) return;
    if (this.inFlight) void this.inFlight.catch(() => undefined).then(() => closeSync(fd));
    else closeSync(fd);
  }
}
