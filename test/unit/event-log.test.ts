import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SequenceExpiredError, WatcherTooSlowError } from '../../src/engine/errors.js';
import { EventLog } from '../../src/engine/events/event-log.js';
import type { EventStore } from '../../src/engine/events/event-store.js';
import { RecentEvents } from '../../src/engine/events/recent-events.js';
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

  it('feeds watchers that keep up from memory and reads the store only to replay', async () => {
    const store = new StateStore(':memory:', { count: 1000, maxAgeMs: 3_600_000 });
    const reads: number[] = [];
    const events: EventStore = {
      append: (event) => store.events.append(event),
      readFrom: (from, limit) => {
        reads.push(from);
        return store.events.readFrom(from, limit);
      },
      oldestSequence: () => store.events.oldestSequence(),
      latestSequence: () => store.events.latestSequence(),
    };
    const log = new EventLog(events, { maxWatcherLag: 1000, recentEvents: 8 });
    const live = log.watch(0);
    const appended = Array.from({ length: 6 }, () => log.append('t', removed));
    const delivered = await live.next(10);
    assert.deepEqual(
      delivered?.map((e) => e.sequence),
      [1, 2, 3, 4, 5, 6],
    );
    assert.ok(
      delivered?.every((e, i) => e === appended[i]),
      'a live watcher gets the appended objects themselves',
    );
    for (let i = 0; i < 8; i++) log.append('t', removed);
    assert.deepEqual(
      (await live.next(10))?.map((e) => e.sequence),
      [7, 8, 9, 10, 11, 12, 13, 14],
    );
    assert.deepEqual(reads, [], 'nothing was read from the store for the live watcher');
    // 14 events, 8 in memory (7 to 14): a watcher from 2 replays from the store.
    const replaying = log.watch(2);
    assert.deepEqual(
      (await replaying.next(10))?.map((e) => e.sequence),
      [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
    );
    assert.deepEqual(reads, [2]);
    live.close();
    replaying.close();
  });

  it('never delivers an event whose transaction rolled back, from memory or from the store', async () => {
    const store = new StateStore(':memory:', { count: 1000, maxAgeMs: 3_600_000 });
    const log = new EventLog(store.events, { maxWatcherLag: 1000, recentEvents: 8 });
    const watcher = log.watch(0);
    log.append('kept', removed);
    assert.throws(() =>
      store.transaction(() => {
        log.append('undone', removed);
        throw new Error('the write after the event failed');
      }),
    );
    assert.deepEqual(
      (await watcher.next(10))?.map((e) => [e.sequence, e.taskId]),
      [[1, 'kept']],
    );
    log.append('after', removed);
    assert.deepEqual(
      (await watcher.next(10))?.map((e) => [e.sequence, e.taskId]),
      [[2, 'after']],
    );
    assert.deepEqual(
      store.events.readFrom(1, 10).map((e) => e.taskId),
      ['kept', 'after'],
    );
    watcher.close();
  });
});

describe('recent events', () => {
  const event = (sequence: number, taskId = 't') => ({ sequence, time: new Date(0), taskId, change: removed });

  it('holds the newest events up to its capacity and sends older reads to the store', () => {
    const recent = new RecentEvents(4, 1);
    for (let s = 1; s <= 10; s++) recent.add(event(s));
    assert.equal(recent.read(6, 10, 100), undefined, 'older than the oldest held');
    assert.deepEqual(
      recent.read(7, 10, 100)?.map((e) => e.sequence),
      [7, 8, 9, 10],
    );
    assert.deepEqual(
      recent.read(8, 9, 100)?.map((e) => e.sequence),
      [8, 9],
      'not past the committed sequence',
    );
    assert.deepEqual(
      recent.read(7, 10, 2)?.map((e) => e.sequence),
      [7, 8],
    );
    assert.deepEqual(recent.read(11, 10, 100), [], 'nothing newer yet');
  });

  it('replaces events whose sequences are handed out again after a rollback', () => {
    const recent = new RecentEvents(4, 1);
    for (let s = 1; s <= 4; s++) recent.add(event(s, 'first'));
    recent.add(event(3, 'again'));
    assert.deepEqual(
      recent.read(2, 10, 100)?.map((e) => [e.sequence, e.taskId]),
      [
        [2, 'first'],
        [3, 'again'],
      ],
    );
  });

  it('keeps nothing with capacity 0', () => {
    const recent = new RecentEvents(0, 1);
    recent.add(event(1));
    assert.equal(recent.read(1, 1, 10), undefined);
  });
});
