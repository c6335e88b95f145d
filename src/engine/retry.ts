import { isTransientRuntimeError } from '../runtime/errors.js';

export interface RetryPolicy {
  /** Total tries, the first included (Infinity: until it succeeds or the signal aborts). */
  attempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

export interface RetryOptions {
  /** Ends the retries: the last error is thrown (a delay in progress ends at once). */
  signal?: AbortSignal;
  /** Whether an error is worth another try; every error is, by default. */
  shouldRetry?: (error: unknown) => boolean;
  /** Told before each delay, e.g. to log the failure. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/** Runs `fn`, trying again with exponential back-off while it fails and the policy allows. */
export async function retry<T>(policy: RetryPolicy, fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { signal, shouldRetry = () => true, onRetry } = options;
  let delay = policy.initialDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= policy.attempts || !shouldRetry(error) || signal?.aborted) throw error;
      onRetry?.(error, attempt, delay);
      await sleep(delay, signal);
      if (signal?.aborted) throw error;
    }
    delay = Math.min(delay * 2, policy.maxDelayMs);
  }
}

/**
 * Runs `fn`, retrying with exponential back-off while it fails with a transient runtime error
 * (daemon down or slow). Other errors, and the last transient one, are thrown.
 */
export function retryTransient<T>(policy: RetryPolicy, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  return retry(policy, fn, { signal, shouldRetry: isTransientRuntimeError });
}

/** Waits `ms`, or less when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
