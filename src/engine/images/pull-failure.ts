import { isRuntimeError, type RuntimeError } from '../../runtime/errors.js';
import { registryHost } from '../../runtime/image-reference.js';

/** Explains a failed pull in words a user can act on. */
export function pullFailureReason(image: string, error: unknown): string {
  if (isRuntimeError(error, 'unauthorized')) {
    return `cannot pull image "${image}": registry ${registryHost(image)} refused the credentials (${(error as RuntimeError).detail})`;
  }
  if (isRuntimeError(error, 'not-found')) return `cannot pull image "${image}": the registry has no such image (${(error as RuntimeError).detail})`;
  if (isRuntimeError(error, 'unavailable')) return `cannot pull image "${image}": the container runtime is unavailable (${(error as RuntimeError).detail})`;
  if (isRuntimeError(error, 'timeout')) return `cannot pull image "${image}": timed out (${(error as RuntimeError).detail})`;
  return `cannot pull image "${image}": ${error instanceof Error ? error.message : String(error)}`;
}
