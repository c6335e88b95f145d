import { RuntimeError } from './errors.js';

/**
 * Runs `fn` with an AbortSignal that fires after `timeoutMs` (or when `outer` aborts), and turns a
 * timeout into RuntimeError("timeout") even when the underlying call ignores the signal.
 */
export async function withTimeout<T>(operation: string, timeoutMs: number, fn: (signal: AbortSignal) => Promise<T>, outer?: AbortSignal): Promise<T> {
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort(outer?.reason);
  outer?.addEventListener('abort', onOuterAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new RuntimeError('timeout', operation, `no answer within ${timeoutMs} ms`);
      controller.abort(error);
      reject(error);
    }, timeoutMs);
  });
  try {
    return await Promise.race([fn(controller.signal), timedOut]);
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onOuterAbort);
  }
}
