import { randomBytes } from 'node:crypto';

/**
 * Errors that no code path expected: an uncaught exception, an unhandled rejection, an error the
 * server could only answer with INTERNAL. Each fails at most one request or one task; none ends
 * the agent. They are counted (berth_internal_errors_total, by where they surfaced) and logged,
 * so that a test or an operator sees that one slipped through.
 */
export type InternalErrorSource = 'uncaught-exception' | 'unhandled-rejection' | 'request';

/** `incident` names the error in the log and in the answer a client got (which carries no internals). */
type Listener = (source: InternalErrorSource, error: unknown, incident: string) => void;

const listeners = new Set<Listener>();
const counts = new Map<InternalErrorSource, number>();

/** Counts an unexpected error and tells the listeners (metrics, the log); returns its incident id. */
export function reportInternalError(source: InternalErrorSource, error: unknown): string {
  counts.set(source, (counts.get(source) ?? 0) + 1);
  const incident = randomBytes(6).toString('hex');
  for (const listener of listeners) {
    try {
      listener(source, error, incident);
    } catch {
      // A listener that fails must not turn one unexpected error into two.
    }
  }
  return incident;
}

/** Calls `listener` on every unexpected error from now on; returns a function that stops it. */
export function onInternalError(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** How many unexpected errors this process has seen, by source. */
export function internalErrorCounts(): ReadonlyMap<InternalErrorSource, number> {
  return counts;
}

let installed = false;

/**
 * The last resort: an exception or rejection that no handler took is reported and the process
 * carries on. Installed once per process, by the agent's entry point.
 */
export function installLastResortHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('uncaughtException', (error) => reportInternalError('uncaught-exception', error));
  process.on('unhandledRejection', (reason) => reportInternalError('unhandled-rejection', reason));
}
