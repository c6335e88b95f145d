import type { Database, Statement } from 'better-sqlite3';
import type { EngineEvent } from '../events/events.js';
import type { EventStore } from '../events/event-store.js';
import { decodeChange, encodeChange } from './event-codec.js';

export interface EventRetention {
  /** At most this many events are kept. */
  count: number;
  /**
   * Events older than this are dropped (checked as events are appended), from the oldest on: an
   * event is kept while an older one after it in sequence is too young to go.
   */
  maxAgeMs: number;
}

interface EventRow {
  sequence: number;
  time: number;
  task_id: string;
  change: string;
}

/** How often appending also drops events past their age. */
const AGE_CHECK_INTERVAL_MS = 1000;

/**
 * The event log's events in the state store's SQLite file. Sequences survive restarts and are
 * never handed out twice, even after every event was pruned (the table is AUTOINCREMENT).
 */
export class SqliteEventStore implements EventStore {
  private latest: number;
  private oldest: number;
  private lastAgeCheck = 0;
  private readonly insert: Statement;
  private readonly select: Statement;
  private readonly pruneBelow: Statement;
  private readonly pruneBefore: Statement;
  private readonly minSequence: Statement;

  constructor(
    private readonly db: Database,
    private readonly retention: EventRetention,
    /** Runs a function in the state store's transaction, so an event lands with the state it reports. */
    private readonly transaction: <T>(fn: () => T) => T,
    private readonly now: () => number = Date.now,
  ) {
    this.insert = db.prepare('INSERT INTO events (sequence, time, task_id, change) VALUES (?, ?, ?, ?)');
    this.select = db.prepare('SELECT sequence, time, task_id, change FROM events WHERE sequence >= ? ORDER BY sequence LIMIT ?');
    this.pruneBelow = db.prepare('DELETE FROM events WHERE sequence < ?');
    // The events older than the cutoff at the head of the log, up to the first one that is not:
    // the search walks the log from its oldest event and stops there (no scan of the whole table,
    // which has no index on time), and what is kept stays one run of sequences with no gap, even
    // when the clock went back while events were written.
    this.pruneBefore = db.prepare('DELETE FROM events WHERE sequence < COALESCE((SELECT sequence FROM events WHERE time >= ? ORDER BY sequence LIMIT 1), ?)');
    this.minSequence = db.prepare('SELECT MIN(sequence) AS oldest FROM events');
    this.latest = 0;
    this.oldest = 1;
    this.reload();
    this.transaction(() => this.prune(this.latest));
  }

  /** Reads the newest and oldest sequences from the file (at open, and after a rollback). */
  reload(): void {
    const max = this.db.prepare('SELECT MAX(sequence) AS latest FROM events').get() as { latest: number | null };
    const counter = this.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get() as { seq: number } | undefined;
    this.latest = Math.max(max.latest ?? 0, counter?.seq ?? 0);
    this.oldest = this.readOldest();
  }

  append(event: EngineEvent): void {
    if (event.sequence !== this.latest + 1) throw new Error(`event ${event.sequence} out of order (latest ${this.latest})`);
    this.transaction(() => {
      this.insert.run(event.sequence, event.time.getTime(), event.taskId, encodeChange(event.change));
      this.prune(event.sequence);
    });
    this.latest = event.sequence;
  }

  readFrom(from: number, limit: number): EngineEvent[] {
    const rows = this.select.all(Math.max(from, this.oldest), limit) as EventRow[];
    return rows.map((row) => ({ sequence: row.sequence, time: new Date(row.time), taskId: row.task_id, change: decodeChange(row.change) }));
  }

  oldestSequence(): number {
    return this.oldest;
  }

  latestSequence(): number {
    return this.latest;
  }

  /** The oldest stored sequence; `latest + 1` when none is stored. */
  private readOldest(latest = this.latest): number {
    const row = this.minSequence.get() as { oldest: number | null };
    return row.oldest ?? latest + 1;
  }

  /** Drops events beyond the retention, `latest` being the newest sequence written. */
  private prune(latest: number): void {
    const keepFrom = latest - this.retention.count + 1;
    if (this.oldest < keepFrom) {
      this.pruneBelow.run(keepFrom);
      this.oldest = keepFrom;
    }
    const now = this.now();
    if (now - this.lastAgeCheck >= AGE_CHECK_INTERVAL_MS) {
      this.lastAgeCheck = now;
      if (this.pruneBefore.run(now - this.retention.maxAgeMs, latest + 1).changes > 0) this.oldest = this.readOldest(latest);
    }
  }
}
