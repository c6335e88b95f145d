import type { EngineEvent } from './events.js';

/**
 * The newest events of the log, in memory, so that watchers keeping up are fed without reading
 * the store: a ring of `capacity` events by sequence. The events are the very objects appended,
 * shared by every watcher that reads them (and by whatever the server caches for them).
 */
export class RecentEvents {
  private readonly slots: (EngineEvent | undefined)[];
  /** Sequence of the oldest event held. */
  private first: number;
  /** Sequence the next event will have; `first` when none is held. */
  private end: number;

  constructor(
    private readonly capacity: number,
    /** The sequence of the first event to come. */
    nextSequence: number,
  ) {
    this.slots = new Array<EngineEvent | undefined>(capacity);
    this.first = nextSequence;
    this.end = nextSequence;
  }

  /**
   * Holds a new event. An event whose sequence is already held replaces it and every newer one:
   * those were appended in a transaction that was rolled back, and their sequences are handed out
   * again.
   */
  add(event: EngineEvent): void {
    if (this.capacity === 0) return;
    if (event.sequence < this.end) this.end = Math.max(event.sequence, this.first);
    if (event.sequence !== this.end) {
      // Not contiguous with what is held (older than all of it, or a gap): start afresh.
      this.slots.fill(undefined);
      this.first = event.sequence;
      this.end = event.sequence;
    }
    this.slots[event.sequence % this.capacity] = event;
    this.end++;
    if (this.end - this.first > this.capacity) this.first = this.end - this.capacity;
  }

  /**
   * Up to `limit` events from sequence `from` through `through`, in order; undefined when `from`
   * is older than the oldest event held (the store has it).
   */
  read(from: number, through: number, limit: number): EngineEvent[] | undefined {
    if (this.capacity === 0 || from < this.first) return undefined;
    const last = Math.min(through, this.end - 1, from + limit - 1);
    const events: EngineEvent[] = [];
    for (let sequence = from; sequence <= last; sequence++) events.push(this.slots[sequence % this.capacity]!);
    return events;
  }
}
