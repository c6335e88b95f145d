import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TaskServiceClient } from '../../src/gen/berth/agent/v1/task_service.js';
import { EventCollector } from '../harness/agent.js';
import { containerInput, engineUnderTest, serveOverGrpc, taskInput, type EngineUnderTest, type ServedEngine } from '../harness/engine-harness.js';

describe('WatchEvents on an idle agent (the engine on the fake runtime, over gRPC)', () => {
  let t: EngineUnderTest;
  let served: ServedEngine;
  let client: TaskServiceClient;
  before(async () => {
    t = await engineUnderTest();
    t.runtime.registry.add('registry.test/app:1');
    served = await serveOverGrpc(t, { events: { heartbeatInterval: '100ms' } });
    client = served.client;
  });
  after(async () => {
    await served?.stop();
  });
  it('sends heartbeats with the position of the stream while nothing happens, and events when something does', async () => {
    const watch = new EventCollector(client, { fromSequence: 1 });
    try {
      const heartbeats = () => watch.messages.filter((m) => m.kind?.$case === 'heartbeat');
      await watch.waitFor('two heartbeats', () => heartbeats().length >= 2, 10_000);
      const position = (m: (typeof watch.messages)[number]) => (m.kind?.$case === 'heartbeat' ? m.kind.value.sequence : -1);
      assert.ok(
        heartbeats().every((m) => position(m) === position(heartbeats()[0]!)),
        'the position does not move while nothing happens',
      );
      t.engine.runTask(taskInput('t', [containerInput('app')]));
      const event = await watch.waitForEvent('the task admitted', (e) => e.taskId === 't');
      await watch.waitFor('a heartbeat after it', (m) => position(m) >= event.sequence, 10_000);
    } finally {
      watch.close();
    }
  });
});
