/**
 * Runs request handlers in the order they came, at most `sliceMs` of them in one turn of the event
 * loop. A burst of requests that arrive together would otherwise all be handled in the turn that
 * read them, and the completions waiting behind them (the fsync that releases events to the
 * watchers, other clients' sockets) would wait for the whole burst. What is over the slice runs in
 * the next turns, after the loop has polled for I/O.
 */
export class TurnSlices {
  private readonly queue: (() => void)[] = [];
  /** Time the handlers took since the loop last came round to `reset`. */
  private spentMs = 0;
  private resetScheduled = false;
  private drainScheduled = false;

  /**
   * `onError` hears what a handler run later threw (a handler run at once throws to its caller);
   * by default it is thrown again on its own, as an uncaught error.
   */
  constructor(
    private readonly sliceMs: number,
    private readonly onError: (error: unknown) => void = (error) =>
      setImmediate(() => {
        throw error;
      }),
  ) {}

  /** Runs `work` now when this turn has time left and nothing waits before it, or later, in order. */
  run(work: () => void): void {
    if (this.queue.length === 0 && this.spentMs < this.sliceMs) {
      this.timed(work);
      return;
    }
    this.queue.push(work);
    this.scheduleDrain();
  }

  private timed(work: () => void): void {
    const started = performance.now();
    try {
      work();
    } finally {
      this.spentMs += performance.now() - started;
      this.scheduleReset();
    }
  }

  /** The next turn starts with the whole slice. */
  private scheduleReset(): void {
    if (this.resetScheduled) return;
    this.resetScheduled = true;
    setImmediate(() => {
      this.resetScheduled = false;
      this.spentMs = 0;
    });
  }

  /**
   * Drains the queue in the check phase of the next turn, after its poll. A setImmediate made
   * while the loop polls (where handlers run, after a socket's read) runs before the loop polls
   * again, in the same turn: the first drain goes through one more setImmediate so that the I/O
   * that completed meanwhile comes first.
   */
  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => setImmediate(this.drain));
  }

  /** Runs a slice of the queue (with the whole slice: the reset of this turn runs first), in order. */
  private readonly drain = (): void => {
    while (this.queue.length > 0 && this.spentMs < this.sliceMs) {
      // A handler that threw does not hold up the ones after it.
      try {
        this.timed(this.queue.shift()!);
      } catch (error) {
        this.onError(error);
      }
    }
    if (this.queue.length === 0) this.drainScheduled = false;
    // Made from the check phase, this runs in the next turn's, after its poll.
    else setImmediate(this.drain);
  };
}
