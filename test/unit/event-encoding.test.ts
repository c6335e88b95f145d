import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EngineEvent } from '../../src/engine/events/events.js';
import { WatchEventsResponse } from '../../src/gen/berth/agent/v1/task_service.js';
import { eventBatchResponse } from '../../src/server/event-encoding.js';

const event = (sequence: number, taskId: string): EngineEvent => ({
  sequence,
  time: new Date(1_700_000_000_000 + sequence),
  taskId,
  change: { type: 'task', knownStatus: 'RUNNING', desiredStatus: 'RUNNING', reason: '' },
});

/** The task ids and sequences a WatchEventsResponse's batch carries. */
function carried(bytes: Buffer): string[] {
  const response = WatchEventsResponse.decode(bytes);
  assert.equal(response.kind?.$case, 'events');
  return response.kind.value.events.map((e) => `${e.taskId}#${e.sequence}`);
}

describe('event batches on the wire', () => {
  it('writes the same bytes to every stream that sends the same events, and the right bytes to one that sends others from the same event', () => {
    const log = [event(1, 'a'), event(2, 'b'), event(3, 'a'), event(4, 'b')];
    // Each watcher reads its own list of the log's event objects.
    const first = eventBatchResponse(log.slice(0, 3));
    const second = eventBatchResponse(log.slice(0, 3));
    assert.equal(second, first, 'a second stream sending the same batch is given the same buffer');
    assert.deepEqual(carried(first), ['a#1', 'b#2', 'a#3']);

    // A watcher further on reads one event more; a watcher of task a alone reads a filtered list.
    assert.deepEqual(carried(eventBatchResponse(log)), ['a#1', 'b#2', 'a#3', 'b#4']);
    assert.deepEqual(carried(eventBatchResponse([log[0]!, log[2]!])), ['a#1', 'a#3']);
    assert.deepEqual(carried(eventBatchResponse([log[0]!, log[3]!, log[2]!].slice(0, 2))), ['a#1', 'b#4'], 'the same first event and length, other events');

    // Equal events that are other objects (read back from the store) are encoded for themselves.
    const replayed = [event(1, 'a'), event(2, 'b'), event(3, 'a')];
    const fromStore = eventBatchResponse(replayed);
    assert.notEqual(fromStore, first);
    assert.deepEqual(fromStore, first, 'with the same bytes');
  });

  it('keeps only the last few batches, so streams at many positions do not make it keep many', () => {
    const log = Array.from({ length: 20 }, (_, i) => event(i + 1, 'a'));
    const first = eventBatchResponse(log.slice(0, 10));
    // A stream that is behind sends another batch between those of the streams that keep up.
    eventBatchResponse(log.slice(1, 11));
    assert.equal(eventBatchResponse(log.slice(0, 10)), first, 'a batch survives a few others');
    for (let i = 2; i < 10; i++) eventBatchResponse(log.slice(i, i + 10));
    const again = eventBatchResponse(log.slice(0, 10));
    assert.notEqual(again, first, 'after many other batches it is put together again');
    assert.deepEqual(again, first);
  });
});
