import { EventEmitter } from 'node:events';
import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { StoreUnavailableError } from '../errors.js';
import type { TaskDefinition } from '../model/task-definition.js';
import type { TaskResources } from '../model/task-snapshot.js';
import { migrate } from './migrations.js';
import type { CniAttachmentRecord, ContainerRecord, ContainerState, ImageRecordRow, TaskRecord, TaskState } from './records.js';
import { SqliteEventStore, type EventRetention } from './sqlite-event-store.js';
import { type FileSync, GroupCommit } from './group-commit.js';
import { WalCheckpointer } from './wal-checkpointer.js';

/** Commits and the time they took, for the benchmark of the store's cost. */
export interface WriteStats {
  commits: number;
  totalMs: number;
}

interface TaskRow {
  id: string;
  definition: string;
  state: string;
}

interface CniRow {
  network: string;
  container_id: string;
  if_name: string;
  task_id: string;
  netns: string;
  config: string;
  args: string;
  result: string | null;
}

interface ContainerRow {
  task_id: string;
  name: string;
  runtime_name: string;
  runtime_id: string | null;
  state: string;
}

/**
 * The agent's state in one SQLite file: tasks and their containers, host resource reservations,
 * images, the event log and CNI attachments. All calls are synchronous; `transaction` groups
 * writes that must land together. WAL mode with synchronous=NORMAL: a write is in the log when its
 * call returns (a crash of the agent loses nothing), and `durable()` resolves once it has reached
 * the disk too (a power cut loses nothing either): see GroupCommit. Nothing the agent acts on is
 * lost: events, answers and changes to the host wait for `durable()`.
 */
export class StateStore extends EventEmitter<{ change: [writable: boolean]; fsync: [seconds: number]; checkpoint: [seconds: number]; checkpointFailed: [reason: string] }> {
  readonly events: SqliteEventStore;
  /** Why writes fail, while they do. */
  private failure: string | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly db: Database;
  private readonly statements: Statements;
  private readonly stats: WriteStats = { commits: 0, totalMs: 0 };
  private readonly groupCommit: GroupCommit;
  private readonly checkpointer: WalCheckpointer | undefined;

  /**
   * Opens (creating if needed) the store at `path`; ':memory:' keeps it in memory (unit tests).
   * `sync` flushes the log file to the disk (fsync in the thread pool; tests hold it back).
   */
  constructor(path: string, retention: EventRetention, sync?: FileSync) {
    super();
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.db = new BetterSqlite3(path);
    // The file holds registry credentials of task definitions: only the agent's user reads it.
    if (path !== ':memory:') chmodSync(path, 0o600);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
    this.statements = prepareStatements(this.db);
    // Each fsync's duration is told as an "fsync" event (for the metrics).
    this.groupCommit = new GroupCommit(path === ':memory:' ? undefined : `${path}-wal`, sync, (seconds) => this.emit('fsync', seconds));
    if (path !== ':memory:') {
      // Checkpoints run in a worker, off the event loop; if it is lost, SQLite runs them in commits
      // again. A log a burst made long is cut back to WAL_FILE_LIMIT_BYTES once written from its start.
      this.db.pragma('wal_autocheckpoint = 0');
      this.db.pragma(`journal_size_limit = ${WAL_FILE_LIMIT_BYTES}`);
      this.checkpointer = new WalCheckpointer(path, {
        checkpointed: (seconds) => this.emit('checkpoint', seconds),
        checkpointFailed: (reason) => this.emit('checkpointFailed', reason),
        finishCheckpoint: () => {
          try {
            if (this.db.open && !this.db.inTransaction) this.db.pragma('wal_checkpoint(PASSIVE)');
          } catch (error) {
            this.emit('checkpointFailed', (error as Error).message);
          }
        },
        workerLost: (reason) => {
          if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT_PAGES}`);
          this.emit('checkpointFailed', `${reason}; checkpoints run in commits from now on`);
        },
      });
    }
    this.events = new SqliteEventStore(this.db, retention, (fn) => this.transaction(fn));
  }

  /**
   * Resolves once every write made before the call has reached the disk. Rejects with
   * StoreUnavailableError when the disk refused it (the store then counts as failing, as when a
   * write fails).
   */
  async durable(): Promise<void> {
    // Called while a transaction runs (a change of the host begun as a change is recorded): that
    // transaction has committed by the time this goes on, and what the caller waits for includes it.
    if (this.db.inTransaction) await Promise.resolve();
    try {
      await this.groupCommit.durable();
    } catch (error) {
      this.fail(`fsync of the write-ahead log: ${(error as Error).message}`);
      throw new StoreUnavailableError(this.failureReason ?? 'fsync failed');
    }
  }

  /**
   * Runs `fn` in one transaction: all its writes land, or none. Nested calls join the outer
   * transaction. Returns what `fn` returns.
   */
  transaction<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    // While writes fail, none is tried: the probe finds out when they work again.
    if (this.failure !== undefined) throw new StoreUnavailableError(this.failure);
    const started = performance.now();
    let result: T;
    try {
      result = this.db.transaction(fn).immediate();
    } catch (error) {
      // Rolled back: the event log's counters must not keep what was undone.
      this.events.reload();
      if (isStorageFailure(error)) {
        this.fail(`${(error as { code: string }).code}: ${(error as Error).message}`);
        throw new StoreUnavailableError(this.failureReason ?? 'write failed');
      }
      throw error;
    }
    this.groupCommit.committedOne();
    this.checkpointer?.committed();
    this.stats.commits++;
    this.stats.totalMs += performance.now() - started;
    return result;
  }

  /** A new task and its containers, before anything is done for it. */
  insertTask(definition: TaskDefinition, state: TaskState, containers: ContainerRecord[]): void {
    this.transaction(() => {
      this.statements.insertTask.run(definition.id, JSON.stringify(definition), JSON.stringify(state));
      for (const c of containers) this.statements.insertContainer.run(definition.id, c.name, c.runtimeName, c.runtimeId ?? null, JSON.stringify(c.state));
    });
  }

  saveTaskState(taskId: string, state: TaskState): void {
    this.transaction(() => this.statements.updateTask.run(JSON.stringify(state), taskId));
  }

  saveContainer(taskId: string, name: string, runtimeId: string | undefined, state: ContainerState): void {
    this.transaction(() => this.statements.updateContainer.run(runtimeId ?? null, JSON.stringify(state), taskId, name));
  }

  /** Forgets a task, its containers and its reservation. */
  deleteTask(taskId: string): void {
    this.transaction(() => {
      this.statements.deleteTask.run(taskId);
      this.statements.deleteReservation.run(taskId);
    });
  }

  /** Every task, in the order they were admitted. */
  loadTasks(): TaskRecord[] {
    const containers = new Map<string, ContainerRecord[]>();
    for (const row of this.statements.selectContainers.all() as ContainerRow[]) {
      const list = containers.get(row.task_id) ?? [];
      list.push({ name: row.name, runtimeName: row.runtime_name, runtimeId: row.runtime_id ?? undefined, state: JSON.parse(row.state) as ContainerState });
      containers.set(row.task_id, list);
    }
    return (this.statements.selectTasks.all() as TaskRow[]).map((row) => {
      const definition = JSON.parse(row.definition) as TaskDefinition;
      const byName = new Map((containers.get(row.id) ?? []).map((c) => [c.name, c]));
      return {
        definition,
        state: JSON.parse(row.state) as TaskState,
        // In the definition's order, then those the agent adds of its own (a pause container).
        containers: [
          ...definition.containers.flatMap((c) => (byName.has(c.name) ? [byName.get(c.name)!] : [])),
          ...[...byName.values()].filter((c) => !definition.containers.some((d) => d.name === c.name)),
        ],
      };
    });
  }

  saveReservation(taskId: string, resources: TaskResources): void {
    this.transaction(() => this.statements.upsertReservation.run(taskId, JSON.stringify(resources)));
  }

  deleteReservation(taskId: string): void {
    this.transaction(() => this.statements.deleteReservation.run(taskId));
  }

  loadReservations(): Map<string, TaskResources> {
    const rows = this.statements.selectReservations.all() as { task_id: string; resources: string }[];
    return new Map(rows.map((r) => [r.task_id, JSON.parse(r.resources) as TaskResources]));
  }

  saveImage(image: ImageRecordRow): void {
    this.transaction(() => this.statements.upsertImage.run(image.reference, image.pulledAt ?? null, image.lastUsedAt, image.pulledWithCredentials ? 1 : 0));
  }

  deleteImage(reference: string): void {
    this.transaction(() => this.statements.deleteImage.run(reference));
  }

  loadImages(): ImageRecordRow[] {
    const rows = this.statements.selectImages.all() as { reference: string; pulled_at: number | null; last_used_at: number; pulled_with_credentials: number }[];
    return rows.map((r) => ({ reference: r.reference, pulledAt: r.pulled_at ?? undefined, lastUsedAt: r.last_used_at, pulledWithCredentials: r.pulled_with_credentials === 1 }));
  }

  /** Inserts or replaces a CNI attachment (keyed by network, container id and interface). */
  saveCniAttachment(a: CniAttachmentRecord): void {
    this.transaction(() =>
      this.statements.upsertCni.run(
        a.network,
        a.containerId,
        a.ifName,
        a.taskId,
        a.netns,
        JSON.stringify(a.config),
        JSON.stringify({ args: a.args, capabilityArgs: a.capabilityArgs, addFailure: a.addFailure, holder: a.holder }),
        a.result === undefined ? null : JSON.stringify(a.result),
        Date.now(),
      ),
    );
  }

  /** Every CNI attachment not yet deleted, oldest first. */
  loadCniAttachments(): CniAttachmentRecord[] {
    const rows = this.statements.selectCni.all() as CniRow[];
    return rows.map((r) => {
      const { args, capabilityArgs, addFailure, holder } = JSON.parse(r.args) as Pick<CniAttachmentRecord, 'args' | 'capabilityArgs' | 'addFailure' | 'holder'>;
      return {
        network: r.network,
        containerId: r.container_id,
        ifName: r.if_name,
        taskId: r.task_id,
        netns: r.netns,
        config: JSON.parse(r.config) as unknown,
        args,
        capabilityArgs,
        addFailure,
        ...(holder ? { holder } : {}),
        result: r.result === null ? undefined : (JSON.parse(r.result) as unknown),
      };
    });
  }

  deleteCniAttachment(key: Pick<CniAttachmentRecord, 'network' | 'containerId' | 'ifName'>): void {
    this.transaction(() => this.statements.deleteCni.run(key.network, key.containerId, key.ifName));
  }

  writeStats(): WriteStats {
    return { ...this.stats };
  }

  /** True while writes work; a "change" event says when that changes. */
  get writable(): boolean {
    return this.failure === undefined;
  }

  /** Why writes fail, while they do. */
  get failureReason(): string | undefined {
    return this.failure;
  }

  /**
   * Writes failed (disk full, I/O error, read-only file system): refuse writes, and try a small
   * one every PROBE_INTERVAL_MS until it works, then say so.
   */
  private fail(reason: string): void {
    const first = this.failure === undefined;
    this.failure = reason;
    if (!first) return;
    this.emit('change', false);
    const probe = () => {
      try {
        this.db
          .transaction(() => {
            this.db.prepare('INSERT INTO store_probe (data) VALUES (zeroblob(65536))').run();
            this.db.prepare('DELETE FROM store_probe').run();
          })
          .immediate();
      } catch {
        this.probeTimer = setTimeout(probe, PROBE_INTERVAL_MS).unref();
        return;
      }
      this.failure = undefined;
      this.emit('change', true);
    };
    this.probeTimer = setTimeout(probe, PROBE_INTERVAL_MS).unref();
  }

  close(): void {
    clearTimeout(this.probeTimer);
    this.groupCommit.close();
    this.checkpointer?.close();
    if (this.db.open) this.db.close();
  }
}

/** The size the write-ahead log's file is cut back to after a burst (it is a few MiB otherwise). */
const WAL_FILE_LIMIT_BYTES = 16 * 1024 * 1024;

/** SQLite's own default: a commit that leaves the log this many pages long checkpoints it. */
const SQLITE_AUTOCHECKPOINT_PAGES = 1000;

/** How often a store whose writes failed tries again. */
const PROBE_INTERVAL_MS = 1000;

/** SQLite errors that say the storage cannot take writes now, rather than that a statement is wrong. */
function isStorageFailure(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|CORRUPT|NOTADB|PROTOCOL)/.test(code);
}

/** Every statement of the store, prepared once. */
function prepareStatements(db: Database) {
  return {
    insertTask: db.prepare('INSERT INTO tasks (id, admitted, definition, state) VALUES (?, (SELECT COALESCE(MAX(admitted), 0) + 1 FROM tasks), ?, ?)'),
    updateTask: db.prepare('UPDATE tasks SET state = ? WHERE id = ?'),
    deleteTask: db.prepare('DELETE FROM tasks WHERE id = ?'),
    selectTasks: db.prepare('SELECT id, definition, state FROM tasks ORDER BY admitted'),
    insertContainer: db.prepare('INSERT INTO containers (task_id, name, runtime_name, runtime_id, state) VALUES (?, ?, ?, ?, ?)'),
    updateContainer: db.prepare('UPDATE containers SET runtime_id = ?, state = ? WHERE task_id = ? AND name = ?'),
    selectContainers: db.prepare('SELECT task_id, name, runtime_name, runtime_id, state FROM containers'),
    upsertReservation: db.prepare('INSERT INTO reservations (task_id, resources) VALUES (?, ?) ON CONFLICT (task_id) DO UPDATE SET resources = excluded.resources'),
    deleteReservation: db.prepare('DELETE FROM reservations WHERE task_id = ?'),
    selectReservations: db.prepare('SELECT task_id, resources FROM reservations'),
    upsertImage: db.prepare(
      'INSERT INTO images (reference, pulled_at, last_used_at, pulled_with_credentials) VALUES (?, ?, ?, ?) ON CONFLICT (reference) DO UPDATE SET pulled_at = excluded.pulled_at, last_used_at = excluded.last_used_at, pulled_with_credentials = excluded.pulled_with_credentials',
    ),
    deleteImage: db.prepare('DELETE FROM images WHERE reference = ?'),
    selectImages: db.prepare('SELECT reference, pulled_at, last_used_at, pulled_with_credentials FROM images'),
    upsertCni: db.prepare('INSERT OR REPLACE INTO cni_attachments (network, container_id, if_name, task_id, netns, config, args, result, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
    selectCni: db.prepare('SELECT network, container_id, if_name, task_id, netns, config, args, result FROM cni_attachments ORDER BY created_at, rowid'),
    deleteCni: db.prepare('DELETE FROM cni_attachments WHERE network = ? AND container_id = ? AND if_name = ?'),
  };
}

type Statements = ReturnType<typeof prepareStatements>;
