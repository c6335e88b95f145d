import assert from 'node:assert/strict';
import type { BinaryWriter } from '@bufbuild/protobuf/wire';
import { after, before, describe, it } from 'node:test';
import { Task, TaskStatus } from '../../src/gen/berth/agent/v1/task.js';
import { TaskDefinition } from '../../src/gen/berth/agent/v1/task_definition.js';
import type { TaskServiceClient } from '../../src/gen/berth/agent/v1/task_service.js';
import { EventCollector, taskCalls } from '../harness/agent.js';
import { containerInput, engineUnderTest, serveOverGrpc, taskInput, type EngineUnderTest, type ServedEngine } from '../harness/engine-harness.js';

/** Counts the calls of a generated message type's `encode` until `restore`. */
function countEncodes<M>(type: { encode: (message: M, writer?: BinaryWriter) => BinaryWriter }) {
  const encode = type.encode;
  const counter = {
    count: 0,
    restore: () => {
      type.encode = encode;
    },
  };
  type.encode = (message, writer) => {
    counter.count++;
    return encode.call(type, message, writer);
  };
  return counter;
}

describe('ListTasks pages and the WatchEvents snapshot, put together from tasks encoded once (the engine on the fake runtime, over gRPC)', () => {
  const COUNT = 250;
  let t: EngineUnderTest;
  let served: ServedEngine;
  let client: TaskServiceClient;
  let ids: string[];
  before(async () => {
    t = await engineUnderTest();
    t.runtime.registry.add('registry.test/app:1');
    served = await serveOverGrpc(t, {});
    client = served.client;
    // Ids that do not sort as they were made: the pages go by id.
    ids = Array.from({ length: COUNT }, (_, i) => `task-${(i * 7919) % COUNT}`);
    const watch = new EventCollector(client, { includeSnapshot: true });
    try {
      await watch.waitFor('the snapshot', (m) => m.kind?.$case === 'snapshot');
      for (const id of ids) t.engine.runTask(taskInput(id, [containerInput('app')]));
      const running = new Set<string>();
      await watch.waitForEvent('every task running', (e) => {
        if (e.change?.$case === 'task' && e.change.value.knownStatus === TaskStatus.TASK_STATUS_RUNNING) running.add(e.taskId);
        return running.size === COUNT;
      });
    } finally {
      watch.close();
    }
  });
  after(async () => {
    await served?.stop();
  });

  it('pages by id with tokens, each task as GetTask answers it, encoding only the tasks of the page asked for', async () => {
    const calls = taskCalls(served.berth);
    const encodes = countEncodes(Task);
    const pages: Task[][] = [];
    try {
      let pageToken = '';
      for (let i = 0; i < 10; i++) {
        encodes.count = 0;
        const page = await calls.listPage({ pageSize: 100, pageToken });
        assert.ok(encodes.count <= 101, `a page of 100 encoded ${encodes.count} tasks (of ${COUNT})`);
        pages.push(page.tasks);
        pageToken = page.nextPageToken;
        if (pageToken === '') break;
      }
    } finally {
      encodes.restore();
    }
    assert.deepEqual(
      pages.map((p) => p.length),
      [100, 100, 50],
    );
    const listed = pages.flat();
    assert.deepEqual(
      listed.map((task) => task.definition?.id),
      [...ids].sort(),
    );
    for (const task of listed.slice(0, 20)) assert.deepEqual(Task.toJSON(task), Task.toJSON((await calls.get(task.definition!.id))!));
  });

  it('sends in the snapshot the same tasks ListTasks lists', async () => {
    const all = await taskCalls(served.berth).listPage({ pageSize: 1000 });
    assert.equal(all.tasks.length, COUNT);
    assert.equal(all.nextPageToken, '');
    const watch = new EventCollector(client, { includeSnapshot: true });
    try {
      await watch.waitFor('the snapshot', (m) => m.kind?.$case === 'snapshot' && !m.kind.value.more);
      const snapshots = watch.messages.flatMap((m) => (m.kind?.$case === 'snapshot' ? [m.kind.value] : []));
      assert.ok(snapshots[0]!.sequence > 0, 'the snapshot says where the events follow on');
      const tasks = snapshots.flatMap((s) => s.tasks).sort((a, b) => (a.definition!.id < b.definition!.id ? -1 : 1));
      assert.deepEqual(
        tasks.map((task) => Task.toJSON(task)),
        all.tasks.map((task) => Task.toJSON(task)),
      );
    } finally {
      watch.close();
    }
  });

  it("encodes each task's definition once, and every answer carries the task's status as it is now", async () => {
    const calls = taskCalls(served.berth);
    const encodes = countEncodes(TaskDefinition);
    try {
      const first = await calls.listPage({ pageSize: 1000 });
      assert.equal(first.tasks.length, COUNT);
      assert.ok(encodes.count <= COUNT, `the first listing encoded ${encodes.count} definitions for ${COUNT} tasks`);
      encodes.count = 0;
      const id = ids[3]!;
      const stopped = (await calls.stop(id, 'no longer needed')).task!;
      assert.equal(stopped.desiredStatus, TaskStatus.TASK_STATUS_STOPPED);
      const again = await calls.listPage({ pageSize: 1000 });
      const got = await calls.get(id);
      assert.equal(encodes.count, 0, 'definitions are encoded once per task');
      const listed = again.tasks.find((task) => task.definition?.id === id)!;
      assert.equal(listed.desiredStatus, TaskStatus.TASK_STATUS_STOPPED);
      assert.equal(got!.desiredStatus, TaskStatus.TASK_STATUS_STOPPED);
      assert.deepEqual(TaskDefinition.toJSON(listed.definition!), TaskDefinition.toJSON(first.tasks.find((task) => task.definition?.id === id)!.definition!));
      assert.equal(listed.definition!.containers[0]!.image, 'registry.test/app:1');
    } finally {
      encodes.restore();
    }
  });
});
