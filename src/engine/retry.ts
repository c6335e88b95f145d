import { isTransientRuntimeError } from '../runtime/errors.js';

export interface RetryPolicy {
  /** Total tries, the first included. */
  attempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

/**
 * Runs `fn`, retrying with exponential back-off while it fails with a transient runtime error
 * (daemon down or slow). Other errors, and the last transient one, are thrown.
 */
export async function retryTransient<T>(policy: RetryPolicy, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  let delay = policy.initialDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= policy.attempts || !isTransientRuntimeError(error) || signal?.aborted) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, policy.maxDelayMs);
  }
}
