import type { EngineEvent } from '../engine/events/events.js';
import { Event } from '../gen/berth/agent/v1/event.js';
import { toPbEvent } from './mapping.js';

/**
 * Events encoded once for every watch stream. The event log hands every watcher that keeps up the
 * same event object, so its protobuf encoding is kept beside it (as long as the log holds the
 * event) and every stream sends those bytes: alone, as a WatchEventsResponse `event`, or with
 * others, in a WatchEventsResponse `events` (an EventBatch).
 */
const encoded = new WeakMap<EngineEvent, { event: Buffer; response?: Buffer }>();

/** Wire type 2 (length-delimited) tags. */
const RESPONSE_EVENT_TAG = (2 << 3) | 2;
const RESPONSE_EVENTS_TAG = (4 << 3) | 2;
const BATCH_EVENT_TAG = (1 << 3) | 2;

function varint(value: number): Buffer {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

/** A length-delimited field: tag, length, bytes. */
function field(tag: number, parts: Buffer[]): Buffer[] {
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  return [Buffer.of(tag), varint(length), ...parts];
}

function encodings(event: EngineEvent): { event: Buffer; response?: Buffer } {
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
  entry.response ??= Buffer.concat(field(RESPONSE_EVENT_TAG, [entry.event]));
  return entry.response;
}

/** The bytes of a WatchEventsResponse carrying `events` in one EventBatch. */
export function eventBatchResponse(events: readonly EngineEvent[]): Buffer {
  return Buffer.concat(
    field(
      RESPONSE_EVENTS_TAG,
      events.flatMap((event) => field(BATCH_EVENT_TAG, [encodedEvent(event)])),
    ),
  );
}
