import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * Commits between two checkpoints. A commit of the engine writes about four pages of log (the
 * event, the task, the container, the event counter), so this is about SQLite's own default of
 * 1,000 pages: the log stays a few MiB.
 */
export const COMMITS_PER_CHECKPOINT = 250;

/** How long a few commits wait for their checkpoint when no more come. */
export const CHECKPOINT_IDLE_MS = 1000;

/**
 * Fewer commits than this are not checkpointed when no more come: they wait for more, as SQLite
 * leaves a short log (an agent that starts and idles never starts the worker).
 */
export const IDLE_CHECKPOINT_MIN_COMMITS = 10;

/**
 * A worker with no checkpoint to make for this long is closed (its thread holds about 8 MiB); the
 * next checkpoint starts another, which takes a few tens of milliseconds of its own thread.
 */
export const WORKER_IDLE_MS = 30_000;

/**
 * The log's length, in pages, past which the store's own connection finishes a checkpoint (64 MiB
 * with 4 KiB pages). The log is written from its start again only by a commit that finds all of
 * it copied; the worker's checkpoints run beside commits, so under writes that never pause each
 * ends with a few new pages left, and the log would grow without end.
 */
export const RESTART_AFTER_FRAMES = 16_384;

export interface CheckpointerOptions {
  commitsPerCheckpoint: number;
  restartAfterFrames: number;
  /** WORKER_IDLE_MS by default. */
  workerIdleMs?: number;
}

/**
 * The worker: its own connection to the file, which copies the log into the database when told.
 * PASSIVE never waits for a lock and never holds up the agent's writes, which go on appending to
 * the log meanwhile; SQLite syncs the log before it copies it and the database after, on this
 * thread. Plain CommonJS, so it runs the same from the sources and from the bundle.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('synchronous = NORMAL');
parentPort.on('message', (message) => {
  if (message === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    const [row] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ frames: row.log });
  } catch (error) {
    parentPort.postMessage({ error: String((error && error.message) || error) });
  }
});
`;

type Reply = { frames: number } | { error: string };

export interface CheckpointerHooks {
  /** A checkpoint ended: how long it took, and how long the log was (in pages) when it ran. */
  checkpointed?(seconds: number, frames: number): void;
  /**
   * A checkpoint failed (the next is tried CHECKPOINT_IDLE_MS later); told once for a run of
   * failures with the same reason.
   */
  checkpointFailed?(reason: string): void;
  /**
   * The worker is gone (it could not start, or it stopped): the store must checkpoint by itself
   * again, or its log would grow without end.
   */
  workerLost(reason: string): void;
  /**
   * The log is longer than `restartAfterFrames` pages: the store checkpoints it on its own
   * connection, between two of its commits, so that the next commit finds it all copied. Only the
   * pages written since the worker's checkpoint are left to copy by then.
   */
  finishCheckpoint(): void;
}

/**
 * Checkpoints a store's write-ahead log in a worker thread. SQLite's automatic checkpoint runs in
 * the commit that fills the log, and with it two fsyncs: on the agent's event loop, it held every
 * call and every event for milliseconds, a few times a second under load. The store turns that off
 * (wal_autocheckpoint = 0) and tells this of each commit instead; every COMMITS_PER_CHECKPOINT
 * commits, or CHECKPOINT_IDLE_MS after the last, the worker checkpoints. One checkpoint at a time;
 * the worker starts with the first, holds the process open only while one runs, and is closed after
 * WORKER_IDLE_MS without one (an idle agent does not keep its thread). Under writes
 * that never pause, the store finishes one checkpoint in RESTART_AFTER_FRAMES pages itself (a few
 * milliseconds on the event loop every few seconds, where SQLite took them a few times a second).
 */
export class WalCheckpointer {
  private worker: Worker | undefined;
  private commits = 0;
  private inFlight = false;
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private retireTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastFailure: string | undefined;

  constructor(
    private readonly path: string,
    private readonly hooks: CheckpointerHooks,
    private readonly options: CheckpointerOptions = { commitsPerCheckpoint: COMMITS_PER_CHECKPOINT, restartAfterFrames: RESTART_AFTER_FRAMES },
  ) {}

  /** A transaction has committed. */
  committed(): void {
    if (this.stopped) return;
    this.commits++;
    if (this.commits >= this.options.commitsPerCheckpoint) this.begin();
    else this.schedule();
  }

  /** Closes the worker's connection once its checkpoint, if one runs, has ended. */
  close(): void {
    this.stop();
    this.retire();
  }

  /** Whether a worker thread is open now (for tests). */
  get hasWorker(): boolean {
    return this.worker !== undefined;
  }

  /** Closes the worker: its connection once its checkpoint, if one runs, has ended, then its thread. */
  private retire(): void {
    clearTimeout(this.retireTimer);
    this.retireTimer = undefined;
    const worker = this.worker;
    if (!worker) return;
    this.worker = undefined;
    worker.postMessage('close');
    worker.unref();
  }

  /** Checkpoints CHECKPOINT_IDLE_MS from now, when at least `minCommits` wait. */
  private schedule(minCommits = IDLE_CHECKPOINT_MIN_COMMITS): void {
    if (this.commits < minCommits) return;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.begin();
    }, CHECKPOINT_IDLE_MS).unref();
  }

  private begin(): void {
    if (this.inFlight || this.stopped || this.commits === 0) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    clearTimeout(this.retireTimer);
    this.retireTimer = undefined;
    const worker = this.worker ?? this.startWorker();
    if (!worker) return;
    this.commits = 0;
    this.inFlight = true;
    this.startedAt = performance.now();
    // A checkpoint under way keeps the process up until it ends; an idle worker does not.
    worker.ref();
    worker.postMessage('checkpoint');
  }

  private startWorker(): Worker | undefined {
    try {
      const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
      // No inherited flags (a CPU profile, a loader for TypeScript): the worker runs plain JavaScript.
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { sqlite, path: this.path }, execArgv: [] });
      // A worker closed for being idle is no longer this.worker: its exit is not a loss.
      worker.on('message', (reply: Reply) => this.worker === worker && this.ended(reply));
      worker.on('error', (error) => this.worker === worker && this.lose(`the checkpoint worker failed: ${error.message}`));
      worker.on('exit', (code) => this.worker === worker && this.lose(`the checkpoint worker exited (code ${code})`));
      worker.unref();
      this.worker = worker;
      return worker;
    } catch (error) {
      this.lose(`the checkpoint worker could not start: ${(error as Error).message}`);
      return undefined;
    }
  }

  private ended(reply: Reply): void {
    if (this.stopped) return;
    this.inFlight = false;
    this.worker?.unref();
    if ('error' in reply) {
      if (reply.error !== this.lastFailure) this.hooks.checkpointFailed?.(reply.error);
      this.lastFailure = reply.error;
      // Tried again, however few commits wait.
      this.commits = Math.max(this.commits, 1);
      this.schedule(1);
      return;
    }
    this.lastFailure = undefined;
    this.hooks.checkpointed?.((performance.now() - this.startedAt) / 1000, reply.frames);
    if (reply.frames >= this.options.restartAfterFrames) {
      this.hooks.finishCheckpoint();
      // All is copied: the next commit writes the log from its start, unless a checkpoint of the
      // worker runs beside it then; the next one waits for commits to checkpoint.
      this.commits = 0;
    }
    if (this.commits >= this.options.commitsPerCheckpoint) return this.begin();
    this.schedule();
    // No checkpoint to come yet: the worker is closed unless one begins meanwhile.
    if (!this.timer) this.retireTimer = setTimeout(() => this.retire(), this.options.workerIdleMs ?? WORKER_IDLE_MS).unref();
  }

  private lose(reason: string): void {
    if (this.stopped) return;
    this.stop();
    const worker = this.worker;
    this.worker = undefined;
    void worker?.terminate();
    this.hooks.workerLost(reason);
  }

  private stop(): void {
    this.stopped = true;
    this.inFlight = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    clearTimeout(this.retireTimer);
    this.retireTimer = undefined;
  }
}
