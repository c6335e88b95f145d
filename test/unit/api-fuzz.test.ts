import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials } from '@grpc/grpc-js';
import pino from 'pino';
import { loadConfig } from '../../src/config/config.js';
import { TaskServiceClient } from '../../src/gen/berth/agent/v1/task_service.js';
import { internalErrorCounts } from '../../src/internal-errors.js';
import { AgentServer } from '../../src/server/grpc-server.js';
import { fuzzAgent } from '../harness/api-fuzz.js';
import { engineUnderTest, type EngineUnderTest } from '../harness/engine-harness.js';

const IMAGE = 'registry.test/app:1';
const totalInternalErrors = () => [...internalErrorCounts().values()].reduce((a, b) => a + b, 0);

describe('every RPC under random and mutated requests (fast-check; the engine on the fake runtime, served over gRPC)', () => {
  let dir: string;
  let t: EngineUnderTest;
  let server: AgentServer;
  let client: TaskServiceClient;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-fuzz-'));
    t = await engineUnderTest({ capacity: { dynamicPortRange: { first: 40000, last: 44999 } } });
    t.runtime.registry.add(IMAGE);
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ dataDir: dir, grpc: { socket: join(dir, 'berth.sock') } }));
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

  it('answers 2,000 requests with documented codes only, accepts every valid definition, and keeps answering GetAgentInfo', async () => {
    const internalBefore = totalInternalErrors();
    const { created, slowestInfoMs, codes } = await fuzzAgent(client, { image: IMAGE, idPrefix: 'fz', runs: 2000 });
    assert.ok(created.length > 100, `only ${created.length} tasks were accepted`);
    assert.ok((codes.get('runTask INVALID_ARGUMENT') ?? 0) > 100, 'the mutations reached validation');
    // A stall, not a speed goal: each answer of the probe waits for the requests in flight.
    assert.ok(slowestInfoMs < 1000, `GetAgentInfo took ${Math.round(slowestInfoMs)} ms`);
    assert.equal(totalInternalErrors(), internalBefore, 'no unexpected error was counted');
  });
});
