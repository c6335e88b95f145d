/**
 * What every interactive session has: a slot of limits.concurrentExecs held until it ends, and an
 * idle timer that every byte either way resets; when it runs out, the session is ended as if the
 * client had gone.
 */
export class SessionLifetime {
  private timer: NodeJS.Timeout | undefined;
  private expired = false;
  private ended = false;

  constructor(
    private readonly idleTimeoutMs: number,
    private readonly release: () => void,
    private readonly onIdle: () => void,
  ) {
    this.touch();
  }

  /** Traffic: the idle timer starts again. */
  touch(): void {
    if (this.ended) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.expired = true;
      this.onIdle();
    }, this.idleTimeoutMs);
    this.timer.unref();
  }

  /** Whether the session ended because nothing passed for the idle timeout. */
  get idleExpired(): boolean {
    return this.expired;
  }

  /** Gives the slot back and stops the timer; once, however often it is called. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    this.release();
  }
}
