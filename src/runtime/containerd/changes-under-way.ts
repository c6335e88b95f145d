import { withTimeout } from '../with-timeout.js';

/**
 * How long containerd may take over one change to a container (a create, a task's create or start)
 * before it is cut short: far beyond the call timeout, since a change cut short collides with the
 * next one.
 */
export const CHANGE_DEADLINE_MS = 5 * 60_000;

/**
 * The changes to containers under way in containerd, one at a time per container and kind.
 *
 * containerd goes on with a call its caller gave up on, and cleans up after it only if it fails: a
 * second call making the same change meanwhile collides with the first one or with its clean-up
 * (a bundle or snapshot taken, or removed under it). So the calls of a change have a deadline of
 * their own (CHANGE_DEADLINE_MS); its caller stops waiting at the call timeout (a timeout, which
 * the engine retries), and a later call for the same change waits for the one under way instead of
 * making another.
 */
export class ChangesUnderWay {
  private readonly pending = new Map<string, Promise<unknown>>();

  /** @param waitMs how long a caller waits for a change: the call timeout */
  constructor(private readonly waitMs: number) {}

  /** The change under way under this key, or `change()` started now and kept until it ends. */
  joinOrStart<T>(key: string, change: () => Promise<T>): Promise<T> {
    const underWay = this.pending.get(key) as Promise<T> | undefined;
    if (underWay) return underWay;
    const started = change();
    this.pending.set(key, started);
    const forget = () => {
      if (this.pending.get(key) === started) this.pending.delete(key);
    };
    started.then(forget, forget);
    return started;
  }

  /** Waits for a change up to the call timeout; fails with a timeout (the change goes on). */
  wait<T>(operation: string, change: Promise<T>): Promise<T> {
    return withTimeout(operation, this.waitMs, () => change);
  }

  /** Ends when the changes under way under these keys have ended, however they ended. */
  async settled(...keys: string[]): Promise<void> {
    await Promise.allSettled(keys.flatMap((key) => this.pending.get(key) ?? []));
  }
}
