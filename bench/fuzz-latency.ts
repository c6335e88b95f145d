/**
 * How fast GetAgentInfo is answered while 2,000 random and mutated requests (the fuzz test's) are
 * served, against the same call on an idle agent: the engine on the fake runtime behind the real
 * gRPC server, in this process. Prints a Markdown table for BENCHMARKS.md ("Hardening").
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import pino from 'pino';
import { loadConfig } from '../src/config/config.js';
import { TaskServiceClient } from '../src/gen/berth/agent/v1/task_service.js';
import { AgentServer } from '../src/server/grpc-server.js';
import { fuzzAgent, probeAgentInfo } from '../test/harness/api-fuzz.js';
import { engineUnderTest } from '../test/harness/engine-harness.js';

const IMAGE = 'registry.test/app:1';
const PROBE_EVERY_MS = 10;

function summary(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return `${sorted.length} | ${at(0.5).toFixed(2)} | ${at(0.99).toFixed(2)} | ${sorted.at(-1)!.toFixed(2)}`;
}

const dir = mkdtempSync(join(tmpdir(), 'berth-bench-fuzz-'));
const t = await engineUnderTest({ capacity: { dynamicPortRange: { first: 40000, last: 44999 } } });
t.runtime.registry.add(IMAGE);
const file = join(dir, 'config.json');
writeFileSync(file, JSON.stringify({ dataDir: dir, grpc: { socket: join(dir, 'berth.sock') } }));
const server = new AgentServer(t.engine, t.monitor, loadConfig(file, {}), pino({ level: 'silent' }));
await server.start();
const client = new TaskServiceClient(`unix://${join(dir, 'berth.sock')}`, credentials.createInsecure());
try {
  const idle = probeAgentInfo(client, PROBE_EVERY_MS);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  await idle.stop();
  const busy = probeAgentInfo(client, PROBE_EVERY_MS);
  const started = performance.now();
  const { codes } = await fuzzAgent(client, { image: IMAGE, idPrefix: 'bench', runs: 2000, seed: 1 });
  const seconds = (performance.now() - started) / 1000;
  await busy.stop();
  const requests = [...codes.values()].reduce((a, b) => a + b, 0);
  console.log(`| agent | GetAgentInfo answers | p50 ms | p99 ms | max ms |`);
  console.log(`|---|---|---|---|---|`);
  console.log(`| idle | ${summary(idle.samples)} |`);
  console.log(`| serving ${requests} fuzz requests (${seconds.toFixed(1)} s) | ${summary(busy.samples.slice(0, -1))} |`);
} finally {
  client.close();
  await server.stop(1000);
  await t.stop();
  rmSync(dir, { recursive: true, force: true });
}
