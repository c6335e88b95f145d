import { LimitExceededError } from './errors.js';

/**
 * A cap on something clients hold open (log follows, stats streams, execs): a slot is taken when
 * one begins and given back when it ends. Beyond the cap, LimitExceededError (RESOURCE_EXHAUSTED
 * with the limit's config key) rather than another open stream the agent must feed.
 */
export class StreamSlots {
  private held = 0;

  constructor(
    private readonly max: number,
    /** The config key of the cap, e.g. "limits.logFollows". */
    private readonly key: string,
    /** What is held, for the message: "log follows". */
    private readonly what: string,
  ) {}

  /** Takes a slot; the returned function gives it back (once, however often it is called). */
  take(): () => void {
    if (this.held >= this.max) throw new LimitExceededError(this.key, this.max, `too many ${this.what} are open on this agent`);
    this.held++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held--;
    };
  }

  get inUse(): number {
    return this.held;
  }
}
