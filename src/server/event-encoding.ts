import type { EngineEvent } from '../engine/events/events.js';
import { Event, Snapshot } from '../gen/berth/agent/v1/event.js';
import { toPbEvent } from './mapping.js';
import { lengthDelimited } from './wire-format.js';

/**
 * Events encoded once for every watch stream. The event log hands every watcher that keeps up the
 * same event object, so its protobuf encoding is kept beside it (as long as the log holds the
 * event) and every stream sends those bytes: alone, as a WatchEventsResponse `event`, or with
 * others, in a WatchEventsResponse `events` (an EventBatch). Kept per event: its Event message, and
 * the WatchEventsResponse with it alone once a stream asked for that.
 */
interface EventEncodings {
  event: Buffer;
  response?: Buffer;
}

const encoded = new WeakMap<EngineEvent, EventEncodings>();

/**
 * The last batches put together. Watchers that keep up are handed the same events together, when
 * they are woken one after the other, so every stream that sends the same batch sends the same
 * bytes. A few, so that a stream that is behind does not push out the batch of those that keep
 * up; no more, so that streams at many positions cannot make the agent keep many batches.
 */
const recentBatches: { events: readonly EngineEvent[]; response: Buffer }[] = [];
const RECENT_BATCHES = 4;

/** Field numbers: WatchEventsResponse.snapshot, .event, .events; EventBatch.events; Snapshot.tasks. */
const RESPONSE_SNAPSHOT_FIELD = 1;
const RESPONSE_EVENT_FIELD = 2;
const RESPONSE_EVENTS_FIELD = 4;
const BATCH_EVENT_FIELD = 1;
const SNAPSHOT_TASKS_FIELD = 2;

function encodings(event: EngineEvent): EventEncodings {
  let entry = encoded.get(event);
  if (entry === undefined) {
    entry = { event: Buffer.from(Event.encode(toPbEvent(event)).finish()) };
    encoded.set(event, entry);
  }
  return entry;
}

/** The bytes of an Event message for `event`. */
export function encodedEvent(event: EngineEvent): Buffer {
  return encodings(event).event;
}

/** The bytes of a WatchEventsResponse carrying `event` alone. */
export function eventResponse(event: EngineEvent): Buffer {
  const entry = encodings(event);
  entry.response ??= Buffer.concat(lengthDelimited(RESPONSE_EVENT_FIELD, [entry.event]));
  return entry.response;
}

/** The bytes of a WatchEventsResponse carrying `events` in one EventBatch. */
export function eventBatchResponse(events: readonly EngineEvent[]): Buffer {
  const kept = recentBatches.find((batch) => sameEvents(batch.events, events));
  if (kept !== undefined) return kept.response;
  const response = batchResponse(events);
  recentBatches.push({ events, response });
  if (recentBatches.length > RECENT_BATCHES) recentBatches.shift();
  return response;
}

function batchResponse(events: readonly EngineEvent[]): Buffer {
  return Buffer.concat(
    lengthDelimited(
      RESPONSE_EVENTS_FIELD,
      events.flatMap((event) => lengthDelimited(BATCH_EVENT_FIELD, [encodedEvent(event)])),
    ),
  );
}

/** Whether two lists hold the same event objects in the same order (a filtered list may not). */
function sameEvents(a: readonly EngineEvent[], b: readonly EngineEvent[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The bytes of a WatchEventsResponse carrying a part of a snapshot, its tasks encoded (see encodedPagesOf). */
export function snapshotResponse(sequence: number, tasks: readonly Buffer[], more: boolean): Buffer {
  const snapshot = [Buffer.from(Snapshot.encode({ sequence, tasks: [], more }).finish()), ...tasks.flatMap((task) => lengthDelimited(SNAPSHOT_TASKS_FIELD, [task]))];
  return Buffer.concat(lengthDelimited(RESPONSE_SNAPSHOT_FIELD, snapshot));
}
