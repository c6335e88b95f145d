/**
 * Start latency: time from RunTask to the task's RUNNING event for N single-container tasks, one
 * at a time and all at once, against the same containers created and started directly with
 * dockerode, on the same private dockerd. Usage: npm run bench -- [N] [ROUNDS]
 *
 * Needs root (it starts its own dockerd and registry, like the integration tests).
 */
import { cpus, totalmem } from 'node:os';
import Docker from 'dockerode';
import type { Event } from '../src/gen/berth/agent/v1/event.js';
import { TaskStatus } from '../src/gen/berth/agent/v1/task.js';
import { call, EventCollector, startTestAgent } from '../test/harness/agent.js';
import { startRuntimeEnvironment } from '../test/harness/runtime-environment.js';
import { container, task } from '../test/harness/task-builders.js';

const N = Number(process.argv[2] ?? 20);
const ROUNDS = Number(process.argv[3] ?? 3);

interface Stats {
  label: string;
  perTaskMs: number[];
  wallMs: number;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};
const p90 = (values: number[]) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * 0.9))]!;

async function main(): Promise<void> {
  const env = await startRuntimeEnvironment('bench', 'docker');
  const dockerd = env.docker!;
  const docker = new Docker({ socketPath: dockerd.socketPath });
  const agent = await startTestAgent(dockerd.host, { engine: { defaultStopTimeout: '1s' } });
  const cachedAgent = await startTestAgent(dockerd.host, { engine: { defaultStopTimeout: '1s' }, images: { pullBehavior: 'prefer-cached' } });
  const results: Stats[] = [];
  try {
    // Warm-up: the image is pulled once, so neither side measures the first download.
    await docker
      .pull(env.image, { authconfig: { ...env.credentials, serveraddress: env.registry.address } })
      .then((stream: NodeJS.ReadableStream) => new Promise((resolve, reject) => docker.modem.followProgress(stream, (e: unknown) => (e ? reject(e) : resolve(undefined)))));
    const watch = new EventCollector(agent.client, { includeSnapshot: true });
    const cachedWatch = new EventCollector(cachedAgent.client, { includeSnapshot: true });
    await watch.waitFor('snapshot', (m) => m.kind?.$case === 'snapshot');
    await cachedWatch.waitFor('snapshot', (m) => m.kind?.$case === 'snapshot');
    const running = (id: string) => (e: Event) => e.taskId === id && e.change?.$case === 'task' && e.change.value.knownStatus === TaskStatus.TASK_STATUS_RUNNING;
    const definition = (id: string) => task(id, [container('app', env.image, { command: ['sleep', '600'], registryCredentials: env.credentials })]);
    const ids: string[] = [];

    const berthOne = async (id: string, which = agent, stream = watch) => {
      ids.push(id);
      owner.set(id, which);
      const started = performance.now();
      await call(which.client, 'runTask', { task: definition(id) });
      await stream.waitForEvent(`${id} RUNNING`, running(id), 120_000);
      return performance.now() - started;
    };
    const owner = new Map<string, typeof agent>();
    const direct = async (name: string, pull: boolean) => {
      const started = performance.now();
      if (pull) {
        const stream = await docker.pull(env.image, { authconfig: { ...env.credentials, serveraddress: env.registry.address } });
        await new Promise((resolve, reject) => docker.modem.followProgress(stream, (e: unknown) => (e ? reject(e) : resolve(undefined))));
      }
      const created = await docker.createContainer({ name, Image: env.image, Cmd: ['sleep', '600'], HostConfig: { NetworkMode: 'none' }, Labels: { bench: 'direct' } });
      await created.start();
      return performance.now() - started;
    };
    const measure = async (label: string, one: (i: number) => Promise<number>, concurrent: boolean) => {
      const started = performance.now();
      const perTaskMs: number[] = [];
      if (concurrent) perTaskMs.push(...(await Promise.all(Array.from({ length: N }, (_, i) => one(i)))));
      else for (let i = 0; i < N; i++) perTaskMs.push(await one(i));
      results.push({ label, perTaskMs, wallMs: performance.now() - started });
    };
    const clearDirect = async () => {
      const list = await docker.listContainers({ all: true, filters: { label: ['bench=direct'] } });
      await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    };
    const clearBerth = async () => {
      for (const id of ids.splice(0)) await call(owner.get(id)!.client, 'stopTask', { taskId: id, reason: '' });
      for (const a of [agent, cachedAgent]) {
        const list = await docker.listContainers({ all: true, filters: { label: [`berth.agent-id=${a.config.agentId}`] } });
        await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true })));
      }
    };

    // Rounds alternate the contenders so that a slow spell of the daemon does not favour one.
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of ['sequential', 'concurrent'] as const) {
        const concurrent = mode === 'concurrent';
        await measure(`direct create+start, ${mode}`, (i) => direct(`d-${round}-${mode}-${i}`, false), concurrent);
        await clearDirect();
        await measure(`direct pull+create+start, ${mode}`, (i) => direct(`p-${round}-${mode}-${i}`, true), concurrent);
        await clearDirect();
        await measure(`berth RunTask→RUNNING, ${mode}`, (i) => berthOne(`b-${round}-${mode}-${i}`), concurrent);
        await clearBerth();
        await measure(`berth prefer-cached RunTask→RUNNING, ${mode}`, (i) => berthOne(`c-${round}-${mode}-${i}`, cachedAgent, cachedWatch), concurrent);
        await clearBerth();
      }
    }
    watch.close();
    cachedWatch.close();
  } finally {
    await cachedAgent.stop();
    await agent.stop();
    await env.stop();
  }

  // Per contender: the median over rounds of each round's median per task, and of its wall time.
  const labels = [...new Set(results.map((r) => r.label))];
  const summary = new Map(
    labels.map((label) => {
      const rounds = results.filter((r) => r.label === label);
      return [label, { median: median(rounds.map((r) => median(r.perTaskMs))), p90: median(rounds.map((r) => p90(r.perTaskMs))), wall: median(rounds.map((r) => r.wallMs)) }];
    }),
  );
  console.log(`\nstart latency, N=${N} tasks x ${ROUNDS} rounds, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`);
  console.log('| run | median per task (ms) | p90 per task (ms) | wall for all N (ms) |');
  console.log('|---|---:|---:|---:|');
  for (const [label, s] of summary) console.log(`| ${label} | ${s.median.toFixed(0)} | ${s.p90.toFixed(0)} | ${s.wall.toFixed(0)} |`);
  for (const mode of ['sequential', 'concurrent']) {
    const berth = summary.get(`berth RunTask→RUNNING, ${mode}`)!;
    const cached = summary.get(`berth prefer-cached RunTask→RUNNING, ${mode}`)!;
    const plain = summary.get(`direct create+start, ${mode}`)!;
    const pulled = summary.get(`direct pull+create+start, ${mode}`)!;
    const ratio = (a: { median: number; wall: number }, b: { median: number; wall: number }) => `median ${(a.median / b.median).toFixed(2)}, wall ${(a.wall / b.wall).toFixed(2)}`;
    console.log(
      `\n${mode}: berth / direct pull+create+start: ${ratio(berth, pulled)}; berth prefer-cached / direct create+start: ${ratio(cached, plain)}; berth / direct create+start: ${ratio(berth, plain)}`,
    );
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
