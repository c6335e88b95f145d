import { once, type EventEmitter } from 'node:events';
import type { ServerWritableStream } from '@grpc/grpc-js';
import { toServiceError } from './error-status.js';

/** Writes one message, waiting for the client to drain when grpc-js buffers too much (or until `signal` aborts). */
export async function writeMessage<Res>(call: { write(message: Res): boolean } & EventEmitter, message: Res, signal: AbortSignal): Promise<void> {
  if (!call.write(message) && !signal.aborted) await once(call, 'drain', { signal }).catch(() => undefined);
}

/**
 * Serves a server-streaming call from a producer: `produce` gets a signal that aborts when the
 * client cancels or the server shuts down, and writes through `write`. The call then ends, or
 * fails with the producer's error mapped to a status.
 */
export async function serveStream<Res>(
  call: ServerWritableStream<unknown, Res>,
  shutdown: AbortSignal,
  produce: (write: (message: Res) => Promise<void>, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const ended = new AbortController();
  const end = () => ended.abort();
  call.on('cancelled', end);
  call.on('close', end);
  shutdown.addEventListener('abort', end, { once: true });
  try {
    await produce((message) => writeMessage(call, message, ended.signal), ended.signal);
    if (!call.cancelled) call.end();
  } catch (error) {
    if (!call.cancelled) call.emit('error', toServiceError(error));
  } finally {
    end();
    shutdown.removeEventListener('abort', end);
  }
}

const IDLE = Symbol('idle');

/**
 * Groups what an iterable yields into batches: a batch is written when the iterable has nothing
 * more ready at once (it would wait), or when it reaches `maxBatch`.
 */
export async function forEachBatch<T>(
  items: AsyncIterable<T>,
  maxBatch: number,
  onBatch: (batch: T[]) => Promise<void>,
  /** Bounds a batch by size too: no batch's items weigh more than `max` together (one item aside). */
  weight?: { of: (item: T) => number; max: number },
): Promise<void> {
  const iterator = items[Symbol.asyncIterator]();
  let batch: T[] = [];
  let batchWeight = 0;
  try {
    let pending = iterator.next();
    for (;;) {
      const result = batch.length === 0 ? await pending : await Promise.race([pending, new Promise<typeof IDLE>((resolve) => setImmediate(() => resolve(IDLE)))]);
      const itemWeight = result !== IDLE && !result.done && weight ? weight.of(result.value) : 0;
      const full = batch.length >= maxBatch || (weight !== undefined && batch.length > 0 && batchWeight + itemWeight > weight.max);
      if (result === IDLE || full) {
        await onBatch(batch);
        batch = [];
        batchWeight = 0;
        if (result === IDLE) continue;
      }
      if (result.done) break;
      batch.push(result.value);
      batchWeight += itemWeight;
      pending = iterator.next();
    }
    if (batch.length > 0) await onBatch(batch);
  } finally {
    await iterator.return?.();
  }
}
