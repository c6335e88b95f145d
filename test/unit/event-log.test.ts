import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SequenceExpiredError, WatcherTooSlowError } from '../../src/engine/errors.js';
import { EventLog } from '../../src/engine/events/event-log.js';
import { StateStore } from '../../src/engine/store/state-store.js';

const removed = { type: 'removed' } as const;
/** An event store in an in-memory SQLite database, keeping at most `count` events. */
const memoryEvents = (count: number) => new StateStore(':memory:', { count, maxAgeMs: 3_600_000 }).events;

describe('event log', () => {
  it('numbers events from 1 without gaps and replays them from any retained sequence', async () => {
    const log = new EventLog(memoryEvents(100), { maxWatcherLag: 100 });
    for (let i = 0; i < 10; i++) log.append(`t${i % 2}`, removed);
    const watcher = log.watch(4);
    const events = await watcher.next(10);
    assert.deepEqual(
      events?.map((e) => e.sequence),
      [4, 5, 6, 7, 8, 9, 10],
    );
    watcher.close();
  });

  it('filters by task id and reports its position past filtered events', async () => {
    const log = new EventLog(memoryEvents(100), { maxWatcherLag: 100 });
    for (let i = 0; i < 6; i++) log.append(`t${i % 3}`, removed);
    const watcher = log.watch(1, new Set(['t1']));
    assert.deepEqual(
      (await watcher.next(10))?.map((e) => e.sequence),
      [2, 5],
    );
    assert.deepEqual(await watcher.next(10), []);
    assert.equal(watcher.position(), 6);
    watcher.close();
  });

  it('wakes a waiting watcher on append and ends it with undefined once closed', async () => {
    const log = new EventLog(memoryEvents(100), { maxWatcherLag: 100 });
    const watcher = log.watch(0);
    const next = watcher.next(5000);
    log.append('t', removed);
    assert.deepEqual(
      (await next)?.map((e) => e.sequence),
      [1],
    );
    const pending = watcher.next(5000);
    watcher.close();
    assert.equal(await pending, undefined);
    assert.equal(log.watcherCount(), 0);
  });

  it('refuses a sequence older than the retained ones with the oldest retained', () => {
    const log = new EventLog(memoryEvents(5), { maxWatcherLag: 5 });
    for (let i = 0; i < 12; i++) log.append('t', removed);
    assert.equal(log.oldestSequence(), 8);
    assert.throws(
      () => log.watch(3),
      (error) => error instanceof SequenceExpiredError && error.oldestRetained === 8,
    );
    assert.doesNotThrow(() => log.watch(8).close());
  });

  it('ends a watcher that falls behind by more than the allowed lag, never blocking append', async () => {
    const log = new EventLog(memoryEvents(1000), { maxWatcherLag: 10 });
    const slow = log.watch(1);
    for (let i = 0; i < 11; i++) log.append('t', removed);
    // Watchers hear of appends once the appending code is done.
    await Promise.resolve();
    assert.equal(slow.failedSignal.aborted, true);
    await assert.rejects(slow.next(10), (error) => error instanceof WatcherTooSlowError && error.lastDelivered === 0);
    assert.equal(log.watcherCount(), 0);
  });
});
