import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TaskStatus } from '../../src/gen/berth/agent/v1/task.js';
import { WatchEventsResponse, type TaskServiceClient } from '../../src/gen/berth/agent/v1/task_service.js';
import { EventCollector } from '../harness/agent.js';
import { containerInput, engineUnderTest, serveOverGrpc, taskInput, type EngineUnderTest, type ServedEngine } from '../harness/engine-harness.js';

describe('WatchEvents to many watchers (the engine on the fake runtime, over gRPC)', () => {
  let t: EngineUnderTest;
  let served: ServedEngine;
  let client: TaskServiceClient;
  before(async () => {
    t = await engineUnderTest();
    t.runtime.registry.add('registry.test/app:1');
    served = await serveOverGrpc(t);
    client = served.client;
  });
  after(async () => {
    await served?.stop();
  });

  it('encodes each event once, whatever the number of live watchers, and delivers all of them to each', async () => {
    const encode = WatchEventsResponse.encode.bind(WatchEventsResponse);
    const encodedEvents: number[] = [];
    WatchEventsResponse.encode = (message, writer) => {
      if (message.kind?.$case === 'event') encodedEvents.push(message.kind.value.sequence);
      return encode(message, writer);
    };
    const watchers = Array.from({ length: 5 }, () => new EventCollector(client, { includeSnapshot: true }));
    try {
      await Promise.all(watchers.map((w) => w.waitFor('the snapshot', (m) => m.kind?.$case === 'snapshot')));
      for (let i = 0; i < 3; i++) t.engine.runTask(taskInput(`fan-${i}`, [containerInput('app')]));
      const running = (id: string) => (m: WatchEventsResponse) =>
        m.kind?.$case === 'event' && m.kind.value.taskId === id && m.kind.value.change?.$case === 'task' && m.kind.value.change.value.knownStatus === TaskStatus.TASK_STATUS_RUNNING;
      await Promise.all(watchers.flatMap((w) => [0, 1, 2].map((i) => w.waitFor(`fan-${i} running`, running(`fan-${i}`)))));
      const sequences = watchers.map((w) => w.events.map((e) => e.sequence));
      for (const seen of sequences.slice(1)) assert.deepEqual(seen, sequences[0], 'every watcher got the same events');
      const delivered = sequences[0]!;
      assert.ok(delivered.length >= 6, `events were delivered (${delivered.length})`);
      const firstEncodings = encodedEvents.filter((s) => delivered.includes(s));
      assert.deepEqual(
        firstEncodings.sort((a, b) => a - b),
        delivered,
        `each event was encoded once for 5 watchers (encoded: ${encodedEvents.join(',')})`,
      );
    } finally {
      WatchEventsResponse.encode = encode;
      for (const w of watchers) w.close();
    }
  });
});
