/**
 * The runtime error vocabulary. Adapters translate every daemon error into one of these kinds, so
 * the engine decides by kind ("is it gone?", "is the daemon down?") and never by message text.
 */
export const RUNTIME_ERROR_KINDS = [
  /** The image, container or exec does not exist. */
  'not-found',
  /** A container with that name already exists. */
  'already-exists',
  /** The registry refused the credentials, or needs some and got none. */
  'unauthorized',
  /** The daemon cannot be reached. */
  'unavailable',
  /** The call did not finish within its timeout. */
  'timeout',
  /** The daemon refused the request as malformed or impossible. */
  'invalid',
  /** The object is in a state that does not allow the call. */
  'conflict',
  /** Anything else the daemon reported. */
  'internal',
] as const;

export type RuntimeErrorKind = (typeof RUNTIME_ERROR_KINDS)[number];

export class RuntimeError extends Error {
  override readonly name = 'RuntimeError';
  constructor(
    readonly kind: RuntimeErrorKind,
    /** What was being done, e.g. `pull image "busybox:latest"`. */
    readonly operation: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${operation}: ${detail}`, options);
  }
}

export function isRuntimeError(error: unknown, kind?: RuntimeErrorKind): error is RuntimeError {
  return error instanceof RuntimeError && (kind === undefined || error.kind === kind);
}

/** True for errors worth retrying later without changing anything: the daemon is down or slow. */
export function isTransientRuntimeError(error: unknown): boolean {
  return isRuntimeError(error, 'unavailable') || isRuntimeError(error, 'timeout');
}
