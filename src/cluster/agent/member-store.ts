import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';

/** What the agent remembers of one assignment it applied. */
export interface AssignedTask {
  taskId: string;
  clusterTaskId: string;
  /** etcd mod revision of the assignment last applied. */
  revision: number;
  /** Why the agent could not run it (bad value, a task id used by a direct task, refused definition). */
  refusal: string | undefined;
  /**
   * The engine's task of this id runs for the assignment. False for a refusal only, e.g. of an
   * assignment whose task id a direct task has: such a task is never stopped for the assignment.
   */
  owned: boolean;
  /** The assignment is gone: the task is stopped, and forgotten once the engine forgets it. */
  released: boolean;
  /** The engine has forgotten the task (cleaned up after it stopped); it is not run again. */
  finished: boolean;
  /**
   * The engine took the task (RunTask answered). False only between the intent being recorded
   * and the engine's answer: a record left so by a crash is applied again at start, not taken for
   * a task the engine ran and forgot.
   */
  admitted: boolean;
}

interface Row {
  task_id: string;
  cluster_task_id: string;
  revision: number;
  refusal: string | null;
  owned: number;
  released: number;
  finished: number;
  admitted: number;
}

/**
 * The agent's own record of its cluster membership, in a small SQLite file of its own
 * (<dataDir>/cluster.db): which tasks came from assignments (so that tasks sent over gRPC are
 * never taken for assigned ones, nor stopped by a reconcile) and the etcd revision the agent last
 * applied. Written with synchronous=FULL: an assignment is recorded on the disk before its task
 * is run, so a crash can never make an assigned task look like a direct one.
 */
export class MemberStore {
  private readonly db: Database;
  private readonly statements: { [name: string]: Statement };
  private readonly cache = new Map<string, AssignedTask>();

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.db = new BetterSqlite3(path);
    if (path !== ':memory:') chmodSync(path, 0o600);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS assigned (
        task_id TEXT PRIMARY KEY,
        cluster_task_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        refusal TEXT,
        owned INTEGER NOT NULL DEFAULT 0,
        released INTEGER NOT NULL DEFAULT 0,
        finished INTEGER NOT NULL DEFAULT 0,
        admitted INTEGER NOT NULL DEFAULT 1
      );
      CREATE TABLE IF NOT EXISTS progress (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    `);
    // Files from before the column: their records were all admitted.
    const columns = this.db.prepare('PRAGMA table_info(assigned)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'admitted')) this.db.exec('ALTER TABLE assigned ADD COLUMN admitted INTEGER NOT NULL DEFAULT 1');
    this.statements = {
      upsert: this.db.prepare(
        `INSERT INTO assigned (task_id, cluster_task_id, revision, refusal, owned, released, finished, admitted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (task_id) DO UPDATE SET cluster_task_id = excluded.cluster_task_id, revision = excluded.revision, refusal = excluded.refusal,
           owned = excluded.owned, released = excluded.released, finished = excluded.finished, admitted = excluded.admitted`,
      ),
      remove: this.db.prepare('DELETE FROM assigned WHERE task_id = ?'),
      setProgress: this.db.prepare('INSERT INTO progress (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value'),
      getProgress: this.db.prepare('SELECT value FROM progress WHERE name = ?'),
    };
    for (const row of this.db.prepare('SELECT * FROM assigned').all() as Row[]) {
      this.cache.set(row.task_id, {
        taskId: row.task_id,
        clusterTaskId: row.cluster_task_id,
        revision: row.revision,
        refusal: row.refusal ?? undefined,
        owned: row.owned === 1,
        released: row.released === 1,
        finished: row.finished === 1,
        admitted: row.admitted === 1,
      });
    }
  }

  get(taskId: string): AssignedTask | undefined {
    return this.cache.get(taskId);
  }

  all(): AssignedTask[] {
    return [...this.cache.values()];
  }

  get size(): number {
    return this.cache.size;
  }

  save(task: AssignedTask): void {
    this.statements.upsert!.run(task.taskId, task.clusterTaskId, task.revision, task.refusal ?? null, task.owned ? 1 : 0, task.released ? 1 : 0, task.finished ? 1 : 0, task.admitted ? 1 : 0);
    this.cache.set(task.taskId, { ...task });
  }

  remove(taskId: string): void {
    this.statements.remove!.run(taskId);
    this.cache.delete(taskId);
  }

  /** The etcd revision up to which the agent has applied its assignments (0: none yet). */
  get appliedRevision(): number {
    return (this.statements.getProgress!.get('applied_revision') as { value: number } | undefined)?.value ?? 0;
  }

  set appliedRevision(revision: number) {
    this.statements.setProgress!.run('applied_revision', revision);
  }

  close(): void {
    this.db.close();
  }
}
