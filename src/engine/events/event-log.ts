import { crashPoint } from '../crash-points.js';
import { SequenceBeyondLatestError, SequenceExpiredError, WatcherTooSlowError } from '../errors.js';
import type { EngineEvent, EventChange } from './events.js';
import type { EventStore } from './event-store.js';
import { RecentEvents } from './recent-events.js';

export interface EventLogOptions {
  /** A watcher more than this many events behind the newest is disconnected. */
  maxWatcherLag: number;
  /** Events a watcher reads at a time. */
  readBatch?: number;
  /**
   * The newest events kept in memory (0: none). Watchers within this many events of the newest
   * are fed from memory; those further behind, replaying, read the store.
   */
  recentEvents?: number;
  /**
   * Resolves once the store's writes so far have reached the disk (StateStore.durable): events
   * are delivered only then. Without it, an event is delivered once it has committed.
   */
  durable?: () => Promise<void>;
  now?: () => Date;
}

/** How long delivery waits before it tries again when the store could not make its events durable. */
const DURABLE_RETRY_MS = 1000;

/**
 * Numbers every state change, stores it, and lets any number of watchers read the log from any
 * retained sequence. Watchers pull at their own pace, so the engine never waits for them: those
 * keeping up read the newest events from memory, the others from the store. One that falls more
 * than `maxWatcherLag` events behind is ended with WatcherTooSlowError and can resume from its
 * last sequence.
 */
export class EventLog {
  private readonly watchers = new Set<EventWatcher>();
  private readonly now: () => Date;
  private readonly recent: RecentEvents;
  private notifyQueued = false;
  /** The newest sequence watchers may deliver: committed, and on the disk. */
  private deliverable: number;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: EventStore,
    private readonly options: EventLogOptions,
  ) {
    this.now = options.now ?? (() => new Date());
    this.recent = new RecentEvents(options.recentEvents ?? 0, store.latestSequence() + 1);
    // What the store holds when the log opens was delivered before, or may be now.
    this.deliverable = store.latestSequence();
  }

  /**
   * Numbers and stores a change. The change is shared with every watcher from here on: it must
   * not be modified afterwards.
   */
  append(taskId: string, change: EventChange): EngineEvent {
    const event: EngineEvent = { sequence: this.store.latestSequence() + 1, time: this.now(), taskId, change };
    this.store.append(event);
    this.recent.add(event);
    this.notifyWatchers();
    return event;
  }

  /**
   * Tells the watchers once the current synchronous work is done and what it wrote is on the
   * disk: by then the transaction that stored the event has committed and its fsync has ended, so
   * no watcher can deliver an event a crash or a power cut could take back. Events committed while
   * one fsync runs are made durable by the next, together.
   */
  private notifyWatchers(): void {
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      crashPoint('event-saved');
      const latest = this.store.latestSequence();
      if (!this.options.durable) return this.deliverUpTo(latest);
      this.options.durable().then(
        () => this.deliverUpTo(latest),
        // The store counts as failing meanwhile; the events wait for an fsync that works.
        () => {
          this.retryTimer ??= setTimeout(() => {
            this.retryTimer = undefined;
            this.notifyWatchers();
          }, DURABLE_RETRY_MS).unref();
        },
      );
    });
  }

  private deliverUpTo(sequence: number): void {
    if (sequence <= this.deliverable) return;
    this.deliverable = sequence;
    for (const watcher of this.watchers) watcher.notify(sequence, this.options.maxWatcherLag);
  }

  latestSequence(): number {
    return this.store.latestSequence();
  }

  oldestSequence(): number {
    return this.store.oldestSequence();
  }

  /**
   * Starts a watcher at `fromSequence` (the first sequence it will deliver). 0 means "after the
   * newest event". Throws SequenceExpiredError when that sequence is no longer retained.
   */
  watch(fromSequence: number, taskIds?: ReadonlySet<string>): EventWatcher {
    const latest = this.store.latestSequence();
    const start = fromSequence === 0 ? latest + 1 : fromSequence;
    if (start < this.store.oldestSequence()) throw new SequenceExpiredError(start, this.store.oldestSequence());
    // A sequence no event has had yet would wait silently for events that may never come so far.
    if (start > latest + 1) throw new SequenceBeyondLatestError(start, latest);
    const watcher = new EventWatcher(this, start, this.options.readBatch ?? 256, taskIds, (w) => this.watchers.delete(w));
    this.watchers.add(watcher);
    return watcher;
  }

  watcherCount(): number {
    return this.watchers.size;
  }

  /**
   * Up to `limit` deliverable events from `from` on: from memory when they are still there, else
   * from the store. Deliverable events have committed (one appended in a transaction that rolled
   * back is past the store's latest sequence) and reached the disk.
   */
  read(from: number, limit: number): EngineEvent[] {
    const upTo = Math.min(this.deliverable, this.store.latestSequence());
    if (from > upTo) return [];
    return this.recent.read(from, upTo, limit) ?? this.store.readFrom(from, Math.min(limit, upTo - from + 1));
  }
}

/** One reader of the event log. Not shared between consumers. */
export class EventWatcher {
  private failure: Error | undefined;
  private closed = false;
  private readonly failed = new AbortController();
  private wake: (() => void) | undefined;
  private lastDelivered: number;

  constructor(
    private readonly log: Pick<EventLog, 'read'>,
    private cursor: number,
    private readonly batch: number,
    private readonly taskIds: ReadonlySet<string> | undefined,
    private readonly onClose: (watcher: EventWatcher) => void,
  ) {
    this.lastDelivered = cursor - 1;
  }

  /** Called by the log after each append. */
  notify(latest: number, maxLag: number): void {
    if (latest - this.cursor + 1 > maxLag) this.fail(new WatcherTooSlowError(this.lastDelivered, maxLag));
    this.wake?.();
  }

  /**
   * The next events for this watcher, in order. Resolves with [] when `idleMs` passes without any
   * (time for a heartbeat), with undefined once closed; rejects when the watcher was ended.
   */
  async next(idleMs: number): Promise<EngineEvent[] | undefined> {
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.closed) return undefined;
      const events = this.log.read(this.cursor, this.batch);
      if (events.length > 0) {
        this.cursor = events[events.length - 1]!.sequence + 1;
        const mine = this.taskIds ? events.filter((e) => this.taskIds!.has(e.taskId)) : events;
        if (mine.length > 0) {
          this.lastDelivered = mine[mine.length - 1]!.sequence;
          return mine;
        }
        continue;
      }
      const woken = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), idleMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      this.wake = undefined;
      if (!woken) return [];
    }
  }

  /**
   * The sequence this watcher has read up to, delivered or filtered out: a client that resumes
   * from position() + 1 misses nothing it asked for.
   */
  position(): number {
    return this.cursor - 1;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
    this.wake?.();
  }

  /** Aborts, with the error as its reason, when the log ends this watcher (it fell behind). */
  get failedSignal(): AbortSignal {
    return this.failed.signal;
  }

  private fail(error: Error): void {
    if (this.failure || this.closed) return;
    this.failure = error;
    this.onClose(this);
    this.failed.abort(error);
    this.wake?.();
  }
}
