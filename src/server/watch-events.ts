import type { ServerWritableStream } from '@grpc/grpc-js';
import { WatcherTooSlowError } from '../engine/errors.js';
import type { EngineEvent } from '../engine/events/events.js';
import type { TaskEngine } from '../engine/task-engine.js';
import { WatchEventsResponse, type WatchEventsRequest } from '../gen/berth/agent/v1/task_service.js';
import { toServiceError } from './error-status.js';
import { toPbEvent, toPbTask } from './mapping.js';
import { pagesOf } from './paging.js';
import { preEncoded } from './pre-encoded.js';
import { writeMessage } from './streaming.js';

/**
 * Each event's WatchEventsResponse, encoded once: the event log hands every watcher that keeps up
 * the same event object, so every stream writes the same bytes. An entry lives as long as the
 * log holds its event.
 */
const encodedEvents = new WeakMap<EngineEvent, Buffer>();

function eventResponse(event: EngineEvent): WatchEventsResponse {
  let bytes = encodedEvents.get(event);
  if (bytes === undefined) {
    bytes = Buffer.from(WatchEventsResponse.encode({ kind: { $case: 'event', value: toPbEvent(event) } }).finish());
    encodedEvents.set(event, bytes);
  }
  return preEncoded(bytes);
}

/**
 * Serves one WatchEvents stream: the snapshot when asked for, then the events from the requested
 * sequence, with a heartbeat when idle. A stream whose client falls too far behind ends with
 * RESOURCE_EXHAUSTED naming the last sequence it was sent.
 */
export async function watchEvents(engine: TaskEngine, call: ServerWritableStream<WatchEventsRequest, WatchEventsResponse>, heartbeatIntervalMs: number, shutdown: AbortSignal): Promise<void> {
  const request = call.request;
  let watch: ReturnType<TaskEngine['watch']>;
  try {
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
      const parts = [...pagesOf(watch.snapshot.tasks.map(toPbTask))];
      if (parts.length === 0) parts.push([]);
      for (const [i, tasks] of parts.entries()) {
        await write({ kind: { $case: 'snapshot', value: { sequence: watch.snapshot.sequence, tasks, more: i < parts.length - 1 } } });
      }
    }
    while (!ended.signal.aborted) {
      const events = await watcher.next(heartbeatIntervalMs);
      if (events === undefined) break;
      if (events.length === 0) {
        await write({ kind: { $case: 'heartbeat', value: { sequence: watcher.position() } } });
        continue;
      }
      for (const event of events) {
        if (ended.signal.aborted) break;
        const written = write(eventResponse(event));
        lastWritten = event.sequence;
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
