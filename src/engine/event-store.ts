import type { EngineEvent } from './events.js';

/**
 * Where the event log keeps its events. Reads and writes are synchronous so that appending an
 * event and handing out a snapshot are atomic with respect to each other (an embedded SQLite
 * store keeps this property).
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

/** Keeps the newest `capacity` events in memory (a ring buffer). */
export class MemoryEventStore implements EventStore {
  private readonly ring: (EngineEvent | undefined)[];
  private latest = 0;
  private count = 0;

  constructor(private readonly capacity: number) {
    if (capacity < 1) throw new RangeError('capacity must be at least 1');
    this.ring = new Array(capacity);
  }

  append(event: EngineEvent): void {
    if (event.sequence !== this.latest + 1) throw new Error(`event ${event.sequence} out of order (latest ${this.latest})`);
    this.ring[event.sequence % this.capacity] = event;
    this.latest = event.sequence;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  readFrom(from: number, limit: number): EngineEvent[] {
    const start = Math.max(from, this.oldestSequence());
    const end = Math.min(this.latest, start + limit - 1);
    const events: EngineEvent[] = [];
    for (let sequence = start; sequence <= end; sequence++) events.push(this.ring[sequence % this.capacity] as EngineEvent);
    return events;
  }

  oldestSequence(): number {
    return this.latest - this.count + 1;
  }

  latestSequence(): number {
    return this.latest;
  }
}
