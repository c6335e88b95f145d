import type { ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { InvalidArgumentError } from '../engine/errors.js';
import { toServiceError } from './error-status.js';

/** Marks a request message that could not be decoded, and why. */
const UNDECODABLE = Symbol('undecodable');
type Undecodable = { [UNDECODABLE]: string };

const isUndecodable = (request: unknown): request is Undecodable => typeof request === 'object' && request !== null && UNDECODABLE in request;

/**
 * A service whose requests are decoded without throwing: grpc-js answers a decoder's exception
 * with INTERNAL, yet a message that does not decode (a 64-bit integer past 2^53, a malformed
 * field) is the client's mistake. The handler of such a request answers INVALID_ARGUMENT instead
 * of being called.
 */
export function withTolerantDecoding<S extends ServiceDefinition, I extends UntypedServiceImplementation>(service: S, implementation: I): { service: S; implementation: I } {
  const tolerantService = {} as Record<string, unknown>;
  const guarded = {} as Record<string, unknown>;
  for (const [name, method] of Object.entries(service)) {
    tolerantService[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return method.requestDeserialize(bytes);
        } catch (error) {
          return { [UNDECODABLE]: error instanceof Error ? error.message : String(error) } satisfies Undecodable;
        }
      },
    };
    const handler = implementation[name] as ((call: { request: unknown; emit(event: 'error', error: unknown): boolean }, callback?: (error: unknown) => void) => void) | undefined;
    if (!handler) continue;
    guarded[name] = (call: { request: unknown; emit(event: 'error', error: unknown): boolean }, callback?: (error: unknown) => void) => {
      if (!isUndecodable(call.request)) return handler(call, callback);
      const error = toServiceError(new InvalidArgumentError([{ field: '', description: `cannot decode the request: ${call.request[UNDECODABLE]}` }], 'invalid request'));
      if (method.responseStream) call.emit('error', error);
      else callback?.(error);
    };
  }
  return { service: tolerantService as S, implementation: guarded as I };
}
