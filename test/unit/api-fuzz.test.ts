import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TaskServiceClient } from '../../src/gen/berth/agent/v1/task_service.js';
import { internalErrorCounts } from '../../src/internal-errors.js';
import { fuzzAgent } from '../harness/api-fuzz.js';
import { engineUnderTest, serveOverGrpc, type ServedEngine } from '../harness/engine-harness.js';

const IMAGE = 'registry.test/app:1';
const totalInternalErrors = () => [...internalErrorCounts().values()].reduce((a, b) => a + b, 0);

describe('every RPC under random and mutated requests (fast-check; the engine on the fake runtime, served over gRPC)', () => {
  let served: ServedEngine;
  let client: TaskServiceClient;
  before(async () => {
    const t = await engineUnderTest({ capacity: { dynamicPortRange: { first: 40000, last: 44999 } } });
    t.runtime.registry.add(IMAGE);
    served = await serveOverGrpc(t);
    client = served.client;
  });
  after(async () => {
    await served?.stop();
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
