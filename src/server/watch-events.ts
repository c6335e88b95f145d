import type { ServerWritableStream } from '@grpc/grpc-js';
import { InvalidArgumentError, WatcherTooSlowError } from '../engine/errors.js';
import { sleep } from '../engine/retry.js';
import type { EventWatcher } from '../engine/events/event-log.js';
import type { EngineEvent } from '../engine/events/events.js';
import type { TaskEngine } from '../engine/task-engine.js';
import type { WatchEventsRequest, WatchEventsResponse } from '../gen/berth/agent/v1/task_service.js';
import { toServiceError } from './error-status.js';
import { encodedEvent, eventBatchResponse, eventResponse, snapshotResponse } from './event-encoding.js';
import { boundedChunks, encodedPagesOf } from './paging.js';
import { preEncoded } from './pre-encoded.js';
import { writeMessage } from './streaming.js';

/** The most events a client may ask for in one message (max_events_per_message). */
export const MAX_EVENTS_PER_MESSAGE = 1000;
/** The longest a client may ask a message to be held for more events (max_batch_delay_ms). */
export const MAX_BATCH_DELAY_MS = 1000;
/**
 * A batch ends before its events' encodings pass this many bytes (one event aside). A stream
 * buffers up to 16 messages before it waits for its client (grpc-js's mark): about 1 MiB.
 */
const BATCH_BYTES = 64 * 1024;

/** Hears how long each event written to a watch stream took from its commit (the metrics). */
export interface EventDeliveryObserver {
  eventDelivered(seconds: number): void;
}

export interface WatchStreamOptions {
  /** A stream that has sent nothing for this long gets a heartbeat. */
  heartbeatIntervalMs: number;
  /** Aborted when the server shuts down: the stream ends. */
  shutdown: AbortSignal;
  delivery?: EventDeliveryObserver;
}

/**
 * Serves one WatchEvents stream: the snapshot when asked for, then the events from the requested
 * sequence, with a heartbeat when idle. A stream whose client falls too far behind ends with
 * RESOURCE_EXHAUSTED naming the last sequence it was sent.
 */
export async function watchEvents(
  engine: TaskEngine,
  call: ServerWritableStream<WatchEventsRequest, WatchEventsResponse>,
  { heartbeatIntervalMs, shutdown, delivery }: WatchStreamOptions,
): Promise<void> {
  const request = call.request;
  let watch: ReturnType<TaskEngine['watch']>;
  try {
    if (request.maxEventsPerMessage > MAX_EVENTS_PER_MESSAGE) {
      throw new InvalidArgumentError([{ field: 'max_events_per_message', description: `must be at most ${MAX_EVENTS_PER_MESSAGE}` }], 'invalid watch request');
    }
    if (request.maxBatchDelayMs > MAX_BATCH_DELAY_MS) {
      throw new InvalidArgumentError([{ field: 'max_batch_delay_ms', description: `must be at most ${MAX_BATCH_DELAY_MS}` }], 'invalid watch request');
    }
    if (request.maxBatchDelayMs > 0 && request.maxEventsPerMessage <= 1) {
      throw new InvalidArgumentError([{ field: 'max_batch_delay_ms', description: 'needs max_events_per_message above 1 (single events are never held)' }], 'invalid watch request');
    }
    watch = engine.watch({ fromSequence: request.fromSequence, includeSnapshot: request.includeSnapshot, taskIds: request.taskIds });
  } catch (error) {
    call.emit('error', toServiceError(error));
    return;
  }
  const { watcher } = watch;
  const ended = new AbortController();
  let lastWritten = watcher.position();
  const end = () => {
    ended.abort();
    watcher.close();
  };
  call.on('cancelled', end);
  call.on('close', end);
  shutdown.addEventListener('abort', end, { once: true });
  // A watcher that fell too far behind is ended at once, even while a write waits for the client.
  const onWatcherFailed = () => {
    end();
    // Resume right after the last event this stream wrote, whatever the watcher had read ahead.
    const reason = watcher.failedSignal.reason as WatcherTooSlowError;
    if (!call.cancelled) call.emit('error', toServiceError(new WatcherTooSlowError(lastWritten, reason.maxLag)));
  };
  watcher.failedSignal.addEventListener('abort', onWatcherFailed, { once: true });

  const write = (message: WatchEventsResponse) => writeMessage(call, message, ended.signal);
  try {
    if (watch.snapshot) {
      // The state it shows is on the disk before a client sees it.
      await engine.durable();
      const parts = [...encodedPagesOf(watch.snapshot.tasks)];
      if (parts.length === 0) parts.push([]);
      for (const [i, tasks] of parts.entries()) {
        await write(preEncoded(snapshotResponse(watch.snapshot.sequence, tasks, i < parts.length - 1)));
      }
    }
    while (!ended.signal.aborted) {
      let events = await watcher.next(heartbeatIntervalMs);
      if (events === undefined) break;
      if (events.length === 0) {
        await write({ kind: { $case: 'heartbeat', value: { sequence: watcher.position() } } });
        continue;
      }
      if (request.maxBatchDelayMs > 0) {
        // Held for the events ready shortly after, which then share the message; a stream that is
        // behind has a full message ready at once and is not held.
        events = await withReady(watcher, events, request.maxEventsPerMessage);
        if (events.length < request.maxEventsPerMessage) {
          await sleep(request.maxBatchDelayMs, ended.signal);
          if (!ended.signal.aborted) events = await withReady(watcher, events, request.maxEventsPerMessage);
        }
      }
      for (const batch of boundedChunks(events, Math.max(1, request.maxEventsPerMessage), BATCH_BYTES, (event) => encodedEvent(event).length)) {
        if (ended.signal.aborted) break;
        const written = write(preEncoded(batch.length === 1 && request.maxEventsPerMessage <= 1 ? eventResponse(batch[0]!) : eventBatchResponse(batch)));
        lastWritten = batch[batch.length - 1]!.sequence;
        // An event's time was taken as it was appended, just before its transaction committed.
        const now = Date.now();
        for (const event of batch) delivery?.eventDelivered((now - event.time.getTime()) / 1000);
        await written;
      }
    }
    if (!call.cancelled && !watcher.failedSignal.aborted) call.end();
  } catch (error) {
    if (!call.cancelled && !watcher.failedSignal.aborted) call.emit('error', toServiceError(error));
  } finally {
    watcher.close();
    shutdown.removeEventListener('abort', end);
  }
}

/** `events` and what the watcher has ready now after them, until there are `max` or no more. */
async function withReady(watcher: EventWatcher, events: EngineEvent[], max: number): Promise<EngineEvent[]> {
  while (events.length < max) {
    const more = await watcher.next(0);
    if (!more?.length) break;
    events = [...events, ...more];
  }
  return events;
}
