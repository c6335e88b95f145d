import type { ServiceDefinition } from '@grpc/grpc-js';

const ENCODED = Symbol('pre-encoded');

/** A response message already encoded: the stream sends its bytes as they are. */
interface PreEncoded {
  readonly [ENCODED]: Buffer;
}

const isPreEncoded = (value: unknown): value is PreEncoded => typeof value === 'object' && value !== null && ENCODED in value;

/**
 * Wraps the encoding of a response message for a stream's `write` or a unary answer, typed as the
 * message it encodes. One message written to many streams is then encoded once, and every stream
 * sends the same bytes; a message put together from parts encoded before is not encoded again.
 */
export function preEncoded<Res>(bytes: Buffer): Res {
  return { [ENCODED]: bytes } satisfies PreEncoded as unknown as Res;
}

/** The service with methods whose answers may be pre-encoded messages beside ordinary ones. */
export function acceptingPreEncoded<S extends ServiceDefinition>(service: S): S {
  const accepting = {} as Record<string, unknown>;
  for (const [name, method] of Object.entries(service)) {
    accepting[name] = { ...method, responseSerialize: (value: unknown): Buffer => (isPreEncoded(value) ? value[ENCODED] : method.responseSerialize(value)) };
  }
  return accepting as S;
}
