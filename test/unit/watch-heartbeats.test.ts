import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials } from '@grpc/grpc-js';
import pino from 'pino';
import { loadConfig } from '../../src/config/config.js';
import { TaskServiceClient } from '../../src/gen/berth/agent/v1/task_service.js';
import { AgentServer } from '../../src/server/grpc-server.js';
import { EventCollector } from '../harness/agent.js';
import { containerInput, engineUnderTest, taskInput, type EngineUnderTest } from '../harness/engine-harness.js';

describe('WatchEvents on an idle agent (the engine on the fake runtime, over gRPC)', () => {
  let dir: string;
  let t: EngineUnderTest;
  let server: AgentServer;
  let client: TaskServiceClient;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-heartbeat-'));
    t = await engineUnderTest();
    t.runtime.registry.add('registry.test/app:1');
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ dataDir: dir, grpc: { socket: join(dir, 'berth.sock') }, events: { heartbeatInterval: '100ms' } }));
    server = new AgentServer(t.engine, t.monitor, loadConfig(file, {}), pino({ level: 'silent' }));
    await server.start();
    client = new TaskServiceClient(`unix://${join(dir, 'berth.sock')}`, credentials.createInsecure());
  });
  after(async () => {
    client?.close();
    await server?.stop(1000);
    await t?.stop();
    rmSync(dir, { recursive: true, force: true });
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
