import { RuntimeError, type RuntimeErrorKind } from '../errors.js';

interface DockerodeError {
  statusCode?: number;
  code?: string;
  name?: string;
  message?: string;
  json?: { message?: string } | null;
  reason?: string;
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'EACCES', 'EHOSTUNREACH', 'ETIMEDOUT']);

/** The daemon's own message, without dockerode's "(HTTP code 404) …" wrapping. */
function dockerMessage(error: unknown): string {
  const e = error as DockerodeError;
  const fromJson = e?.json?.message;
  if (typeof fromJson === 'string' && fromJson.length > 0) return fromJson.trim();
  return String(e?.message ?? error).trim();
}

/** Classifies a message from a registry or the daemon about an image. */
export function classifyImageMessage(message: string): RuntimeErrorKind | undefined {
  const m = message.toLowerCase();
  if (
    m.includes('unauthorized') ||
    m.includes('authentication required') ||
    m.includes('no basic auth credentials') ||
    m.includes('incorrect username or password') ||
    m.includes('access denied') ||
    m.includes('access to the resource is denied')
  ) {
    return 'unauthorized';
  }
  if (m.includes('manifest unknown') || m.includes('not found') || m.includes('does not exist') || m.includes('no such image')) {
    return 'not-found';
  }
  return undefined;
}

/** Translates any error from dockerode into a RuntimeError. */
export function toRuntimeError(operation: string, error: unknown, about: 'image' | 'other' = 'other'): RuntimeError {
  if (error instanceof RuntimeError) return error;
  const e = error as DockerodeError;
  const detail = dockerMessage(error);
  let kind: RuntimeErrorKind = 'internal';
  if (e?.code && CONNECTION_CODES.has(e.code)) kind = 'unavailable';
  else if (e?.name === 'AbortError') kind = 'timeout';
  else if (e?.statusCode === 404) kind = 'not-found';
  else if (e?.statusCode === 409) kind = detail.includes('already in use') ? 'already-exists' : 'conflict';
  else if (e?.statusCode === 400) kind = 'invalid';
  else if (e?.statusCode === 401 || e?.statusCode === 403) kind = 'unauthorized';
  else if (about === 'image') kind = classifyImageMessage(detail) ?? 'internal';
  return new RuntimeError(kind, operation, detail, { cause: error });
}
