import type { Database } from 'better-sqlite3';

/**
 * The schema of the state store, as numbered steps. A database records the last step applied in
 * `PRAGMA user_version`; opening it applies the later steps in order, each in its own transaction.
 * Steps are never edited once released: a change to the schema is a new step.
 */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'tasks, containers, reservations, images, events, CNI results',
    sql: `
      -- One row per task the agent knows; the definition is written once, the state on every change.
      CREATE TABLE tasks (
        id          TEXT PRIMARY KEY,
        admitted    INTEGER NOT NULL,           -- order of admission, for the resource queue
        definition  TEXT NOT NULL,              -- JSON TaskDefinition
        state       TEXT NOT NULL               -- JSON task state (statuses, reasons, times)
      );
      -- One row per container of a task, written when the task is admitted (so the deterministic
      -- runtime name is saved before any create call) and on every change.
      CREATE TABLE containers (
        task_id       TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        runtime_name  TEXT NOT NULL UNIQUE,
        runtime_id    TEXT,
        state         TEXT NOT NULL,            -- JSON container state
        PRIMARY KEY (task_id, name)
      );
      -- Host resources a task holds; the row exists exactly while the task holds them.
      CREATE TABLE reservations (
        task_id    TEXT PRIMARY KEY,
        resources  TEXT NOT NULL                -- JSON TaskResources
      );
      -- Images the agent pulled or used, for the "once" pull behaviour and for image cleanup.
      CREATE TABLE images (
        reference     TEXT PRIMARY KEY,
        pulled_at     INTEGER,                  -- ms since the epoch; NULL until a pull succeeded
        last_used_at  INTEGER NOT NULL
      );
      -- The event log. AUTOINCREMENT keeps SQLite from ever handing out a pruned sequence again.
      CREATE TABLE events (
        sequence  INTEGER PRIMARY KEY AUTOINCREMENT,
        time      INTEGER NOT NULL,             -- ms since the epoch
        task_id   TEXT NOT NULL,
        change    TEXT NOT NULL                 -- JSON EventChange
      );
      -- Results of CNI ADD, kept so that DEL can be given them after an agent restart.
      CREATE TABLE cni_results (
        network       TEXT NOT NULL,
        container_id  TEXT NOT NULL,
        if_name       TEXT NOT NULL,
        result        TEXT NOT NULL,            -- JSON, as the plugin returned it
        created_at    INTEGER NOT NULL,
        PRIMARY KEY (network, container_id, if_name)
      );
    `,
  },
  {
    version: 2,
    description: 'CNI attachments: the whole attachment, written before ADD runs',
    sql: `
      -- Version 1's table was never written to.
      DROP TABLE cni_results;
      -- One row per CNI attachment of a task's network namespace. It is written before ADD runs
      -- (result NULL), so that an attachment whose ADD was cut short by a crash is still deleted,
      -- and it keeps the configuration and arguments ADD used, which DEL must be given again.
      -- Not tied to the task's row: it outlives the task until DEL succeeded.
      CREATE TABLE cni_attachments (
        network       TEXT NOT NULL,
        container_id  TEXT NOT NULL,
        if_name       TEXT NOT NULL,
        task_id       TEXT NOT NULL,
        netns         TEXT NOT NULL,            -- path of the network namespace
        config        TEXT NOT NULL,            -- JSON network configuration list
        args          TEXT NOT NULL,            -- JSON {args, capabilityArgs, addFailure}
        result        TEXT,                     -- JSON, as the last plugin printed it; NULL until ADD succeeded
        created_at    INTEGER NOT NULL,
        PRIMARY KEY (network, container_id, if_name)
      );
    `,
  },
  {
    version: 3,
    description: 'a scratch table the store writes to find out whether it can write again',
    sql: `
      CREATE TABLE store_probe (data BLOB);
    `,
  },
  {
    version: 4,
    description: 'whether an image was pulled with credentials, so a task may use its cached copy only with credentials the registry accepts',
    sql: `
      ALTER TABLE images ADD COLUMN pulled_with_credentials INTEGER NOT NULL DEFAULT 0;
      -- Pulled before this was recorded: assume credentials, so the cached copy is checked.
      UPDATE images SET pulled_with_credentials = 1 WHERE pulled_at IS NOT NULL;
    `,
  },
  {
    version: 5,
    description: "tasks indexed by their order of admission, so that a new task's place is found without reading every task",
    sql: `
      -- A new task's place is the largest so far plus one: without the index, every RunTask read
      -- the whole table, and launches slowed as the tasks the agent keeps grew.
      CREATE INDEX tasks_by_admission ON tasks (admitted);
    `,
  },
];

/** Brings the database up to the newest step; refuses a database written by a newer berth. */
export function migrate(db: Database, migrations: readonly Migration[] = MIGRATIONS): { from: number; to: number } {
  const from = db.pragma('user_version', { simple: true }) as number;
  const newest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  if (from > newest) {
    throw new Error(`the state store has schema version ${from}, newer than this berth understands (${newest}); upgrade berth or move the file away`);
  }
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (migration.version <= from) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      db.pragma(`user_version = ${migration.version}`);
    })();
  }
  return { from, to: Math.max(from, newest) };
}
