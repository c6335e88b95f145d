/**
 * What the network mode `task` costs: RunTask → RUNNING of a one-container task in mode `task`
 * (pause container, CNI ADD of loopback + bridge + portmap, the container joining the namespace)
 * against the same task in mode `none`, one task at a time and 20 at once, on Docker and on
 * containerd, with the real plugins. Rounds alternate the modes. Usage:
 * npm run bench:network -- [SEQUENTIAL=10] [CONCURRENT=20] [ROUNDS=3]. Needs root.
 */
import { cpus, totalmem } from 'node:os';
import type { Event } from '../src/gen/berth/agent/v1/event.js';
import { TaskStatus } from '../src/gen/berth/agent/v1/task.js';
import { NetworkMode } from '../src/gen/berth/agent/v1/task_definition.js';
import { call, EventCollector, startTestAgent } from '../test/harness/agent.js';
import { RUNTIME_KINDS, startRuntimeEnvironment } from '../test/harness/runtime-environment.js';
import { container, task } from '../test/harness/task-builders.js';

const SEQUENTIAL = Number(process.argv[2] ?? 10);
const CONCURRENT = Number(process.argv[3] ?? 20);
const ROUNDS = Number(process.argv[4] ?? 3);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const status = (id: string, s: TaskStatus) => (e: Event) => e.taskId === id && e.change?.$case === 'task' && e.change.value.knownStatus === s;

async function main(): Promise<void> {
  const results = new Map<string, { perTask: number[]; wall: number }[]>();
  const record = (label: string, perTask: number[], wall: number) => results.set(label, [...(results.get(label) ?? []), { perTask, wall }]);
  for (const kind of RUNTIME_KINDS) {
    const env = await startRuntimeEnvironment('bench-net', kind);
    const agent = await startTestAgent(env, { engine: { defaultStopTimeout: '1s' }, images: { pullBehavior: 'prefer-cached' } });
    const watch = new EventCollector(agent.client, { includeSnapshot: true });
    try {
      await watch.waitFor('snapshot', (m) => m.kind?.$case === 'snapshot');
      await env.runtime.pullImage(env.image, { auth: env.credentials });
      let counter = 0;
      const launch = async (mode: 'none' | 'task', ids: string[]) => {
        const id = `n-${counter++}`;
        ids.push(id);
        const started = performance.now();
        const networkMode = mode === 'task' ? NetworkMode.NETWORK_MODE_TASK : NetworkMode.NETWORK_MODE_NONE;
        await call(agent.client, 'runTask', { task: task(id, [container('app', env.image, { command: ['sleep', '600'], registryCredentials: env.credentials })], { networkMode }) });
        await watch.waitForEvent(`${id} RUNNING`, status(id, TaskStatus.TASK_STATUS_RUNNING), 120_000);
        return performance.now() - started;
      };
      const stopAll = async (ids: string[]) => {
        await Promise.all(ids.map((id) => call(agent.client, 'stopTask', { taskId: id, reason: '' })));
        await Promise.all(ids.map((id) => watch.waitForEvent(`${id} STOPPED`, status(id, TaskStatus.TASK_STATUS_STOPPED), 120_000)));
      };
      for (let round = 0; round < ROUNDS; round++) {
        for (const mode of round % 2 === 0 ? (['none', 'task'] as const) : (['task', 'none'] as const)) {
          const ids: string[] = [];
          let started = performance.now();
          const sequential: number[] = [];
          for (let i = 0; i < SEQUENTIAL; i++) sequential.push(await launch(mode, ids));
          record(`${kind}, ${mode}, one at a time`, sequential, performance.now() - started);
          await stopAll(ids.splice(0));
          started = performance.now();
          const concurrent = await Promise.all(Array.from({ length: CONCURRENT }, () => launch(mode, ids)));
          record(`${kind}, ${mode}, ${CONCURRENT} at once`, concurrent, performance.now() - started);
          await stopAll(ids);
        }
      }
    } finally {
      watch.close();
      await agent.stop();
      await env.stop();
    }
  }

  console.log(
    `\ntask network mode vs none, ${SEQUENTIAL} one at a time and ${CONCURRENT} at once, ${ROUNDS} rounds, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`,
  );
  console.log('| run | median per task (ms) | wall (ms) |');
  console.log('|---|---:|---:|');
  const summary = new Map([...results].map(([label, rounds]) => [label, { median: median(rounds.map((r) => median(r.perTask))), wall: median(rounds.map((r) => r.wall)) }]));
  for (const [label, s] of summary) console.log(`| ${label} | ${s.median.toFixed(0)} | ${s.wall.toFixed(0)} |`);
  console.log('\n| added by mode task | median per task | wall |\n|---|---:|---:|');
  for (const kind of RUNTIME_KINDS) {
    for (const how of ['one at a time', `${CONCURRENT} at once`]) {
      const t = summary.get(`${kind}, task, ${how}`)!;
      const n = summary.get(`${kind}, none, ${how}`)!;
      console.log(`| ${kind}, ${how} | +${(t.median - n.median).toFixed(0)} ms (${(t.median / n.median).toFixed(2)}x) | +${(t.wall - n.wall).toFixed(0)} ms (${(t.wall / n.wall).toFixed(2)}x) |`);
    }
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
