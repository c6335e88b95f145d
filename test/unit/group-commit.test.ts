import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { StoreUnavailableError } from '../../src/engine/errors.js';
import { EventLog } from '../../src/engine/events/event-log.js';
import type { FileSync } from '../../src/engine/store/group-commit.js';
import { StateStore } from '../../src/engine/store/state-store.js';
import { TaskStatus } from '../../src/gen/berth/agent/v1/task.js';
import { EventCollector, taskCalls } from '../harness/agent.js';
import { containerInput, engineUnderTest, serveOverGrpc, taskInput, taskStatus } from '../harness/engine-harness.js';
import { container, task } from '../harness/task-builders.js';

/** An fsync the test holds back: each call waits until the test lets it end (or fail). */
class HeldSync {
  calls = 0;
  private readonly waiting: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private held = true;

  readonly sync: FileSync = () => {
    this.calls++;
    const failure = this.nextFailure;
    this.nextFailure = undefined;
    if (failure) return Promise.reject(failure);
    if (!this.held) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  };

  get pending(): number {
    return this.waiting.length;
  }

  /** Ends the oldest fsync waiting. */
  endOne(): void {
    this.waiting.shift()!.resolve();
  }

  failOne(error: Error): void {
    this.waiting.shift()!.reject(error);
  }

  /** The next fsync fails with `error` at once (once the fsyncs are released). */
  failNext(error: Error): void {
    this.nextFailure = error;
  }

  private nextFailure: Error | undefined;

  /** Ends every fsync waiting, and lets later ones end at once. */
  release(): void {
    this.held = false;
    for (const w of this.waiting.splice(0)) w.resolve();
  }
}

const storeFile = () => join(mkdtempSync(join(tmpdir(), 'berth-group-commit-')), 'berth.db');
const retention = { count: 10_000, maxAgeMs: 3_600_000 };

/** Lets pending promise callbacks and I/O callbacks run, until `done` (at most 100,000 turns of the event loop, 5 s). */
async function turnsUntil(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  for (let turn = 0; turn < 100_000 && Date.now() < deadline && !done(); turn++) await new Promise((resolve) => setImmediate(resolve));
}

/** Whether a promise has settled, after the pending callbacks have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await turnsUntil(() => done);
  return done;
}

describe('group commit: the state store syncs its log off the event loop, one fsync for the commits made meanwhile', () => {
  it('covers every commit made while an fsync ran with one more fsync', async () => {
    const held = new HeldSync();
    const store = new StateStore(storeFile(), retention, held.sync);
    const fsyncSeconds: number[] = [];
    store.on('fsync', (seconds) => fsyncSeconds.push(seconds));
    try {
      store.saveImage({ reference: 'first', lastUsedAt: 1, pulledWithCredentials: false });
      const first = store.durable();
      await turnsUntil(() => held.pending === 1);
      assert.equal(held.calls, 1);
      // 50 commits, each waited for, while the first fsync runs.
      const later = Array.from({ length: 50 }, (_, i) => {
        store.saveImage({ reference: `image-${i}`, lastUsedAt: i, pulledWithCredentials: false });
        return store.durable();
      });
      assert.equal(await settled(first), false, 'the first commit waits for its fsync');
      held.endOne();
      await first;
      assert.equal(await settled(Promise.all(later)), false, 'an fsync that began before them does not cover them');
      await turnsUntil(() => held.pending === 1);
      assert.equal(held.calls, 2, 'one fsync for the 50');
      held.endOne();
      await Promise.all(later);
      assert.equal(held.calls, 2);
      // Nothing written since: nothing to sync.
      await store.durable();
      assert.equal(held.calls, 2);
      // Each fsync's duration was told (for the metrics), once it ended.
      assert.equal(fsyncSeconds.length, 2);
      assert.ok(fsyncSeconds.every((seconds) => seconds >= 0));
    } finally {
      held.release();
      store.close();
    }
  });

  it('makes a wait begun inside a transaction (a change of the host started as a change is recorded) wait for that transaction too', async () => {
    const held = new HeldSync();
    const store = new StateStore(storeFile(), retention, held.sync);
    try {
      let inner!: Promise<void>;
      store.transaction(() => {
        store.saveImage({ reference: 'recorded', lastUsedAt: 1, pulledWithCredentials: false });
        inner = store.durable();
      });
      const begunBeforeCommit = held.calls;
      for (let i = 0; i < 5 && !(await settled(inner)); i++) {
        await turnsUntil(() => held.pending > 0);
        held.endOne();
      }
      await inner;
      assert.ok(held.calls > begunBeforeCommit, `an fsync begun after the commit ended before the wait did (${held.calls} fsyncs, ${begunBeforeCommit} begun before the commit)`);
    } finally {
      held.release();
      store.close();
    }
  });

  it('delivers an event to watchers only once its fsync has ended', async () => {
    const held = new HeldSync();
    const store = new StateStore(storeFile(), retention, held.sync);
    const log = new EventLog(store.events, { maxWatcherLag: 100, recentEvents: 16, durable: () => store.durable() });
    const watcher = log.watch(0);
    try {
      log.append('t1', { type: 'removed' });
      const next = watcher.next(30_000);
      await turnsUntil(() => held.pending === 1);
      assert.equal(await settled(next), false, 'not delivered before the fsync');
      assert.deepEqual(log.read(1, 10), [], 'nor readable by a watcher replaying');
      held.endOne();
      assert.deepEqual(
        (await next)?.map((e) => e.sequence),
        [1],
      );
    } finally {
      watcher.close();
      held.release();
      store.close();
    }
  });

  it('counts the store as failing when an fsync fails, and works again once writes and fsyncs do', async () => {
    const held = new HeldSync();
    const store = new StateStore(storeFile(), retention, held.sync);
    try {
      store.saveImage({ reference: 'lost?', lastUsedAt: 1, pulledWithCredentials: false });
      const durable = store.durable();
      await turnsUntil(() => held.pending === 1);
      held.failOne(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
      await assert.rejects(durable, StoreUnavailableError);
      assert.equal(store.writable, false);
      assert.match(store.failureReason ?? '', /fsync of the write-ahead log: EIO/);
      assert.throws(() => store.saveImage({ reference: 'refused', lastUsedAt: 2, pulledWithCredentials: false }), StoreUnavailableError);
      held.release();
      // The store tries a small write every second (on a timer that keeps no process alive) until one works.
      const keepAlive = setTimeout(() => undefined, 10_000);
      await once(store, 'change');
      clearTimeout(keepAlive);
      assert.equal(store.writable, true);
      store.saveImage({ reference: 'again', lastUsedAt: 3, pulledWithCredentials: false });
      await store.durable();
    } finally {
      held.release();
      store.close();
    }
  });

  it('keeps the changes an action brings in memory while the store takes no writes, and carries the task on once it does (the engine on the fake runtime)', async () => {
    const held = new HeldSync();
    held.release();
    const store = new StateStore(storeFile(), retention, held.sync);
    const t = await engineUnderTest({ store });
    const image = 'registry.test/app:1';
    t.runtime.registry.add(image);
    t.runtime.heldPulls.set(image, () => undefined);
    const unexpected: unknown[] = [];
    const onUnexpected = (error: unknown) => unexpected.push(error);
    process.on('unhandledRejection', onUnexpected);
    process.on('uncaughtException', onUnexpected);
    // The store tries a small write every second until one works (on a timer that keeps no process alive).
    const keepAlive = setTimeout(() => undefined, 10_000);
    try {
      t.engine.runTask(taskInput('held-pull', [containerInput('app')]));
      await turnsUntil(() => t.runtime.calls.includes(`pull ${image}`));
      held.failNext(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
      store.saveImage({ reference: 'written-as-the-disk-fails', lastUsedAt: 1, pulledWithCredentials: false });
      await assert.rejects(store.durable(), StoreUnavailableError);
      assert.equal(store.writable, false);
      // The pull ends: its outcome and what follows it are one commit, which the store refuses.
      t.runtime.releasePull(image);
      await t.waitFor('the task running, once the store takes writes again', taskStatus('held-pull', 'RUNNING'));
      assert.equal(store.writable, true);
      assert.deepEqual(unexpected, [], 'nothing escaped as an unexpected error');
      assert.equal(t.engine.getTask('held-pull').containers[0]?.knownStatus, 'RUNNING');
    } finally {
      clearTimeout(keepAlive);
      process.off('unhandledRejection', onUnexpected);
      process.off('uncaughtException', onUnexpected);
      await t.stop();
      store.close();
    }
  });

  it('holds answers, the snapshot, events and the runtime changes of a task until its writes are on the disk (the engine on the fake runtime, over gRPC)', async () => {
    const held = new HeldSync();
    const store = new StateStore(storeFile(), retention, held.sync);
    const t = await engineUnderTest({ store });
    t.runtime.registry.add('registry.test/app:1');
    const served = await serveOverGrpc(t, {});
    const watch = new EventCollector(served.client, { includeSnapshot: true });
    try {
      // The snapshot waits for the first fsync (which covers what the store held when it opened).
      await turnsUntil(() => held.pending > 0);
      assert.equal(watch.messages.length, 0, 'no snapshot before its fsync');
      held.endOne();
      await watch.waitFor('the snapshot', (m) => m.kind?.$case === 'snapshot');
      const answer = taskCalls(served.berth).run(task('held', [container('app', 'registry.test/app:1')]));
      await turnsUntil(() => held.pending > 0 && t.engine.getTask('held') !== undefined);
      assert.ok(['PENDING', 'PULLED'].includes(t.engine.getTask('held').knownStatus), 'the engine took the task (and may pull: that changes nothing the store knows)');
      assert.equal(await settled(answer), false, 'RunTask is answered once the task is on the disk');
      assert.equal(watch.events.length, 0, 'no event before its fsync');
      assert.equal(t.runtime.containers.size, 0, 'no container created before the task is on the disk');
      held.release();
      assert.equal((await answer).created, true);
      await watch.waitForEvent('the task running', (e) => e.taskId === 'held' && e.change?.$case === 'task' && e.change.value.knownStatus === TaskStatus.TASK_STATUS_RUNNING);
      assert.equal(t.runtime.containers.size, 1);
    } finally {
      watch.close();
      held.release();
      await served.stop();
    }
  });
});
