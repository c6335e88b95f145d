import type { EngineEvent } from './events.js';

/**
 * Where the event log keeps its events (store/sqlite-event-store.ts). Reads and writes are
 * synchronous so that appending an event and handing out a snapshot are atomic with respect to
 * each other.
 */
export interface EventStore {
  /** Stores an event whose sequence is exactly latestSequence() + 1. */
  append(event: EngineEvent): void;
  /** Up to `limit` events with sequence >= `from`, in order. */
  readFrom(from: number, limit: number): EngineEvent[];
  /** Oldest retained sequence; latestSequence() + 1 when nothing is retained. */
  oldestSequence(): number;
  /** Last assigned sequence; 0 before the first event. */
  latestSequence(): number;
}
