/**
 * Start latency on both runtimes: RunTask → RUNNING (berth, prefer-cached, image present) against
 * the same container created and started directly through the runtime adapter (the runtime's own
 * API calls, no engine), on containerd and on Docker, in the same run. Rounds alternate the
 * contenders. Usage: npm run bench:runtimes -- [N=20] [ROUNDS=3]. Needs root.
 */
import { cpus, totalmem } from 'node:os';
import type { Event } from '../src/gen/berth/agent/v1/event.js';
import { TaskStatus } from '../src/gen/berth/agent/v1/task.js';
import { call, EventCollector, startTestAgent, type TestAgent } from '../test/harness/agent.js';
import { RUNTIME_KINDS, startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../test/harness/runtime-environment.js';
import { container, task } from '../test/harness/task-builders.js';
import { directSpec } from './parts/direct-launches.js';

const N = Number(process.argv[2] ?? 20);
const ROUNDS = Number(process.argv[3] ?? 3);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** Total seconds and number of calls by runtime operation. */
type CallTotals = Map<string, { seconds: number; count: number }>;

/** berth's runtime calls so far, from its `berth_runtime_call_duration_seconds` histogram. */
async function berthCallTotals(agent: TestAgent): Promise<CallTotals> {
  const totals: CallTotals = new Map();
  const metric = agent.agent.parts.metrics.registry.getSingleMetric('berth_runtime_call_duration_seconds');
  for (const value of (await metric!.get()).values) {
    const operation = String(value.labels.operation);
    const series = (value as { metricName?: string }).metricName ?? '';
    const entry = totals.get(operation) ?? { seconds: 0, count: 0 };
    if (series.endsWith('_sum')) entry.seconds += value.value;
    else if (series.endsWith('_count')) entry.count += value.value;
    else continue;
    totals.set(operation, entry);
  }
  return totals;
}

/** The calls made between two readings of the totals. */
function callsBetween(before: CallTotals, after: CallTotals): CallTotals {
  const between: CallTotals = new Map();
  for (const [operation, { seconds, count }] of after) {
    const earlier = before.get(operation) ?? { seconds: 0, count: 0 };
    if (count > earlier.count) between.set(operation, { seconds: seconds - earlier.seconds, count: count - earlier.count });
  }
  return between;
}

/** Adds a run's calls to the totals of its label. */
function addCalls(into: Map<string, CallTotals>, label: string, calls: CallTotals): void {
  const totals = into.get(label) ?? new Map();
  for (const [operation, { seconds, count }] of calls) {
    const entry = totals.get(operation) ?? { seconds: 0, count: 0 };
    totals.set(operation, { seconds: entry.seconds + seconds, count: entry.count + count });
  }
  into.set(label, totals);
}

interface Contender {
  env: RuntimeEnvironment;
  agent: TestAgent;
  watch: EventCollector;
}

async function main(): Promise<void> {
  const contenders = new Map<RuntimeKind, Contender>();
  const results = new Map<string, { perTask: number[]; wall: number }[]>();
  const record = (label: string, perTask: number[], wall: number) => results.set(label, [...(results.get(label) ?? []), { perTask, wall }]);
  // Where each launch's time goes: the runtime calls made for it (direct: timed here; berth: its metrics).
  const calls = new Map<string, CallTotals>();
  try {
    for (const kind of RUNTIME_KINDS) {
      const env = await startRuntimeEnvironment('bench', kind);
      const agent = await startTestAgent(env, { engine: { defaultStopTimeout: '1s' }, images: { pullBehavior: 'prefer-cached' } });
      const watch = new EventCollector(agent.client, { includeSnapshot: true });
      await watch.waitFor('snapshot', (m) => m.kind?.$case === 'snapshot');
      await env.runtime.pullImage(env.image, { auth: env.credentials });
      contenders.set(kind, { env, agent, watch });
    }
    const running = (id: string) => (e: Event) => e.taskId === id && e.change?.$case === 'task' && e.change.value.knownStatus === TaskStatus.TASK_STATUS_RUNNING;
    const measure = async (label: string, one: (i: number) => Promise<void>, concurrent: boolean) => {
      const timed = async (i: number) => {
        const started = performance.now();
        await one(i);
        return performance.now() - started;
      };
      const started = performance.now();
      const perTask = concurrent ? await Promise.all(Array.from({ length: N }, (_, i) => timed(i))) : [];
      if (!concurrent) for (let i = 0; i < N; i++) perTask.push(await timed(i));
      record(label, perTask, performance.now() - started);
    };
    const clear = async (c: Contender, taskIds: string[]) => {
      for (const id of taskIds) await call(c.agent.client, 'stopTask', { taskId: id, reason: '' });
      for (const info of await c.env.runtime.listContainers({})) await c.env.runtime.removeContainer(info.id);
    };

    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of ['sequential', 'concurrent'] as const) {
        for (const [kind, c] of contenders) {
          const direct: CallTotals = new Map([
            ['create_container', { seconds: 0, count: 0 }],
            ['start_container', { seconds: 0, count: 0 }],
          ]);
          const timedCall = async <T>(operation: string, fn: () => Promise<T>): Promise<T> => {
            const started = performance.now();
            const result = await fn();
            const entry = direct.get(operation)!;
            entry.seconds += (performance.now() - started) / 1000;
            entry.count += 1;
            return result;
          };
          await measure(
            `${kind}: direct create+start, ${mode}`,
            async (i) => {
              const id = await timedCall('create_container', () => c.env.runtime.createContainer(directSpec(c.env.image, `direct-${round}-${mode}-${i}`)));
              await timedCall('start_container', () => c.env.runtime.startContainer(id));
            },
            mode === 'concurrent',
          );
          addCalls(calls, `${kind} ${mode} direct`, direct);
          await clear(c, []);
          const ids: string[] = [];
          const before = await berthCallTotals(c.agent);
          await measure(
            `${kind}: berth RunTask→RUNNING, ${mode}`,
            async (i) => {
              const id = `b-${round}-${mode}-${i}`;
              ids.push(id);
              await call(c.agent.client, 'runTask', { task: task(id, [container('app', c.env.image, { command: ['sleep', '600'], registryCredentials: c.env.credentials })]) });
              await c.watch.waitForEvent(`${id} RUNNING`, running(id), 120_000);
            },
            mode === 'concurrent',
          );
          addCalls(calls, `${kind} ${mode} berth`, callsBetween(before, await berthCallTotals(c.agent)));
          await clear(c, ids);
        }
      }
    }
  } finally {
    for (const c of contenders.values()) {
      c.watch.close();
      await c.agent.stop();
      await c.env.stop();
    }
  }

  console.log(
    `\nstart latency on both runtimes, N=${N} x ${ROUNDS} rounds, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`,
  );
  console.log('| run | median per task (ms) | wall for all N (ms) |');
  console.log('|---|---:|---:|');
  const summary = new Map([...results].map(([label, rounds]) => [label, { median: median(rounds.map((r) => median(r.perTask))), wall: median(rounds.map((r) => r.wall)) }]));
  for (const [label, s] of summary) console.log(`| ${label} | ${s.median.toFixed(0)} | ${s.wall.toFixed(0)} |`);
  console.log('\n| ratio | median | wall |\n|---|---:|---:|');
  for (const mode of ['sequential', 'concurrent']) {
    for (const kind of RUNTIME_KINDS) {
      const berth = summary.get(`${kind}: berth RunTask→RUNNING, ${mode}`)!;
      const direct = summary.get(`${kind}: direct create+start, ${mode}`)!;
      console.log(`| ${mode}: berth on ${kind} / direct ${kind} | ${(berth.median / direct.median).toFixed(2)} | ${(berth.wall / direct.wall).toFixed(2)} |`);
    }
    const cd = summary.get(`containerd: berth RunTask→RUNNING, ${mode}`)!;
    const dk = summary.get(`docker: berth RunTask→RUNNING, ${mode}`)!;
    console.log(`| ${mode}: berth on containerd / berth on docker | ${(cd.median / dk.median).toFixed(2)} | ${(cd.wall / dk.wall).toFixed(2)} |`);
  }
  // Per launch: the mean time of each runtime call, and what is left of the mean launch outside them.
  console.log(
    '\nruntime calls per launch, mean ms (calls per launch); "outside" = the mean launch less its calls (other calls: the agent\'s background ones, pings and relists, spread over the launches)\n',
  );
  console.log('| run | create | prepare start | start | image check | other calls | mean launch outside its calls |\n|---|---:|---:|---:|---:|---:|---:|');
  for (const mode of ['sequential', 'concurrent']) {
    for (const kind of RUNTIME_KINDS) {
      for (const who of ['direct', 'berth'] as const) {
        const totals = calls.get(`${kind} ${mode} ${who}`) ?? new Map();
        const label = `${kind}: ${who === 'direct' ? 'direct create+start' : 'berth RunTask→RUNNING'}, ${mode}`;
        const launches = (results.get(label) ?? []).reduce((n, r) => n + r.perTask.length, 0);
        const perLaunch = (operations: (op: string) => boolean) => {
          let seconds = 0;
          let count = 0;
          for (const [op, entry] of totals) if (operations(op)) ((seconds += entry.seconds), (count += entry.count));
          return { ms: (seconds * 1000) / Math.max(1, launches), count: count / Math.max(1, launches) };
        };
        const known = ['create_container', 'prepare_start', 'start_container', 'inspect_image'];
        const cells = [...known.map((op) => perLaunch((o) => o === op)), perLaunch((o) => !known.includes(o))];
        const rounds = results.get(label) ?? [];
        const meanLaunch = rounds.reduce((sum, r) => sum + r.perTask.reduce((a, b) => a + b, 0), 0) / Math.max(1, launches);
        const outside = meanLaunch - cells.slice(0, known.length).reduce((sum, cell) => sum + cell.ms, 0);
        console.log(`| ${kind} ${who}, ${mode} | ${cells.map((c) => `${c.ms.toFixed(0)} (${c.count.toFixed(1)})`).join(' | ')} | ${outside.toFixed(0)} |`);
      }
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
