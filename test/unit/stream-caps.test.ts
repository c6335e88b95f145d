import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { LimitExceededError } from '../../src/engine/errors.js';
import { StreamSlots } from '../../src/engine/stream-slots.js';
import { containerInput, engineUnderTest, taskInput, taskStatus, type EngineUnderTest } from '../harness/engine-harness.js';

describe('caps on what clients hold open', () => {
  let t: EngineUnderTest | undefined;
  afterEach(async () => {
    await t?.stop();
    t = undefined;
  });

  it('gives slots up to the cap, refuses the next with the limit named, and takes each back once', () => {
    const slots = new StreamSlots(2, 'limits.logFollows', 'log follows');
    const first = slots.take();
    slots.take();
    assert.throws(
      () => slots.take(),
      (error: unknown) => error instanceof LimitExceededError && error.limit === 'limits.logFollows' && error.value === 2,
    );
    first();
    first();
    assert.equal(slots.inUse, 1);
    slots.take();
    assert.throws(() => slots.take(), LimitExceededError);
  });

  it('refuses a WatchEvents stream beyond limits.watchers until one closes', async () => {
    t = await engineUnderTest({ limits: { watchers: 2 } });
    const watches = [t.engine.watch({ fromSequence: 0, includeSnapshot: false, taskIds: [] }), t.engine.watch({ fromSequence: 0, includeSnapshot: true, taskIds: [] })];
    assert.throws(() => t!.engine.watch({ fromSequence: 0, includeSnapshot: false, taskIds: [] }), /limits\.watchers/);
    watches[0]!.watcher.close();
    t.engine.watch({ fromSequence: 0, includeSnapshot: false, taskIds: [] }).watcher.close();
    watches[1]!.watcher.close();
  });

  it('refuses an Exec beyond limits.concurrentExecs while the others run, and a task-id list beyond limits.watchTaskIds', async () => {
    t = await engineUnderTest({ limits: { concurrentExecs: 1, watchTaskIds: 3 } });
    t.runtime.registry.add('registry.test/app:1');
    t.engine.runTask(taskInput('t', [containerInput('app')]));
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    let finish!: () => void;
    t.runtime.execResult = () => new Promise((resolve) => (finish = () => resolve({ exitCode: 0, output: Buffer.alloc(0) })));
    const running = t.engine.containers.exec('t', 'app', ['sleep', '1']);
    await assert.rejects(t.engine.containers.exec('t', 'app', ['true']), (error: unknown) => error instanceof LimitExceededError && error.limit === 'limits.concurrentExecs');
    finish();
    await running;
    t.runtime.execResult = async () => ({ exitCode: 0, output: Buffer.from('ok') });
    assert.equal((await t.engine.containers.exec('t', 'app', ['true'])).output.toString(), 'ok');
    assert.throws(() => t!.engine.watch({ fromSequence: 0, includeSnapshot: false, taskIds: ['a', 'b', 'c', 'd'] }), /task_ids: must list at most 3/);
  });
});
