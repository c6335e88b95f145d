/**
 * What the network mode `task` costs: RunTask → RUNNING of a one-container task in mode `task`
 * (the namespace, made by berth on containerd or held by a pause container on Docker, CNI ADD of
 * berth's default list on a subnet and bridge of the benchmark's own, the bridge plugin alone for
 * this task without host ports, the container joining the namespace) against the same task in mode `none`, one task at a time and
 * 20 at once, on Docker and on containerd, with the real plugins. Rounds rotate the modes. Besides
 * the time, the machine's CPU time per task (all processes, from /proc/stat): the launches are bound
 * by the CPU on a small machine, and this varies less from run to run than the time; and where the
 * CPU of each mode's last burst went, by process. Usage:
 * npm run bench:network -- [SEQUENTIAL=10] [CONCURRENT=20] [ROUNDS=3] [WARM=4] [KINDS=docker,containerd]. A third
 * mode runs the tasks on an agent keeping WARM warm namespaces (on Docker, each held by a pause
 * container). With BENCH_IPMASQ=1 a fourth runs them on a list whose bridge plugin masquerades
 * each task (`ipMasq`) instead of berth's one rule for the subnet. With BENCH_CNI_PARALLEL=N a
 * fifth runs them on an agent that runs at most N plugin programs at once
 * (`network.cni.maxParallelPlugins`). Needs root.
 */
import { cpus, totalmem } from 'node:os';
import type { Event } from '../src/gen/berth/agent/v1/event.js';
import { TaskStatus } from '../src/gen/berth/agent/v1/task.js';
import { NetworkMode } from '../src/gen/berth/agent/v1/task_definition.js';
import { readFileSync } from 'node:fs';
import { call, EventCollector, startTestAgent, type TestAgent } from '../test/harness/agent.js';
import { createDefaultShapedNetwork } from '../test/harness/cni-network.js';
import { cpuByProcess, processCpu } from './parts/process-cpu.js';
import { waitUntil } from '../test/harness/processes.js';
import { RUNTIME_KINDS, startRuntimeEnvironment, type RuntimeKind } from '../test/harness/runtime-environment.js';
import { container, task } from '../test/harness/task-builders.js';

const SEQUENTIAL = Number(process.argv[2] ?? 10);
const CONCURRENT = Number(process.argv[3] ?? 20);
const ROUNDS = Number(process.argv[4] ?? 3);
/** Size of the warm pool of the third mode: 0 leaves that mode out. */
const WARM = Number(process.argv[5] ?? 4);
/** The runtimes to measure, comma-separated. */
const KINDS = (process.argv[6] ?? RUNTIME_KINDS.join(',')).split(',').filter((k): k is RuntimeKind => (RUNTIME_KINDS as readonly string[]).includes(k));

/** Adds the mode on a list that masquerades each task. */
const IPMASQ = process.env.BENCH_IPMASQ === '1';
/** Adds the mode on an agent that runs at most this many plugins at once (`network.cni.maxParallelPlugins`). */
const PARALLEL = Number(process.env.BENCH_CNI_PARALLEL ?? 0);

/**
 * none; task (namespace set up at launch); task, warm (a warm namespace when one is ready); task,
 * ipMasq (set up at launch, the bridge plugin masquerading each task).
 */
type Mode = 'none' | 'task' | 'task, warm' | 'task, ipMasq' | 'task, plugins limited';

/** CPU time the machine spent so far, all processes and the kernel, in ms (/proc/stat, 100 ticks a second). */
function machineCpuMs(): number {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) * 10;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const status = (id: string, s: TaskStatus) => (e: Event) => e.taskId === id && e.change?.$case === 'task' && e.change.value.knownStatus === s;

async function main(): Promise<void> {
  const results = new Map<string, { perTask: number[]; wall: number; cpuPerTask: number }[]>();
  /** Where the CPU of each mode's last batch of CONCURRENT went, per task. */
  const cpuWhere = new Map<string, string>();
  const record = (label: string, perTask: number[], wall: number, cpuPerTask: number) => results.set(label, [...(results.get(label) ?? []), { perTask, wall, cpuPerTask }]);
  for (const kind of KINDS) {
    const env = await startRuntimeEnvironment('bench-net', kind);
    const network = createDefaultShapedNetwork();
    const settings = { engine: { defaultStopTimeout: '1s' }, images: { pullBehavior: 'prefer-cached' } };
    const agent = await startTestAgent(env, { ...settings, network: network.agentSettings });
    const warmAgent = WARM > 0 ? await startTestAgent(env, { ...settings, network: { cni: { ...network.agentSettings.cni, warmPoolSize: WARM } } }) : undefined;
    // The environment's own test network: its bridge plugin masquerades each task.
    const ipMasqAgent = IPMASQ ? await startTestAgent(env, settings) : undefined;
    const limitedAgent = PARALLEL > 0 ? await startTestAgent(env, { ...settings, network: { cni: { ...network.agentSettings.cni, maxParallelPlugins: PARALLEL } } }) : undefined;
    const agents = new Map<Mode, TestAgent>([
      ['none', agent],
      ['task', agent],
      ...(warmAgent ? [['task, warm', warmAgent] as const] : []),
      ...(ipMasqAgent ? [['task, ipMasq', ipMasqAgent] as const] : []),
      ...(limitedAgent ? [['task, plugins limited', limitedAgent] as const] : []),
    ]);
    const watches = new Map([...new Set(agents.values())].map((a) => [a, new EventCollector(a.client, { includeSnapshot: true })]));
    try {
      for (const w of watches.values()) await w.waitFor('snapshot', (m) => m.kind?.$case === 'snapshot');
      await env.runtime.pullImage(env.image, { auth: env.credentials });
      let counter = 0;
      const launch = async (mode: Mode, ids: string[]) => {
        const id = `n-${counter++}`;
        ids.push(id);
        const on = agents.get(mode)!;
        const started = performance.now();
        const networkMode = mode === 'none' ? NetworkMode.NETWORK_MODE_NONE : NetworkMode.NETWORK_MODE_TASK;
        await call(on.client, 'runTask', { task: task(id, [container('app', env.image, { command: ['sleep', '600'], registryCredentials: env.credentials })], { networkMode }) });
        await watches.get(on)!.waitForEvent(`${id} RUNNING`, status(id, TaskStatus.TASK_STATUS_RUNNING), 120_000);
        return performance.now() - started;
      };
      const stopAll = async (mode: Mode, ids: string[]) => {
        const on = agents.get(mode)!;
        await Promise.all(ids.map((id) => call(on.client, 'stopTask', { taskId: id, reason: '' })));
        await Promise.all(ids.map((id) => watches.get(on)!.waitForEvent(`${id} STOPPED`, status(id, TaskStatus.TASK_STATUS_STOPPED), 120_000)));
        // Every batch starts with a full pool (nothing else holds an address between batches).
        if (mode === 'task, warm') await waitUntil('the warm pool full', 60_000, async () => (network.allocatedAddresses().length === WARM ? true : undefined));
      };
      const modes = [...agents.keys()];
      if (warmAgent) await stopAll('task, warm', []);
      for (let round = 0; round < ROUNDS; round++) {
        for (const mode of [...modes.slice(round % modes.length), ...modes.slice(0, round % modes.length)]) {
          const ids: string[] = [];
          let started = performance.now();
          let cpu = machineCpuMs();
          const sequential: number[] = [];
          for (let i = 0; i < SEQUENTIAL; i++) sequential.push(await launch(mode, ids));
          record(`${kind}, ${mode}, one at a time`, sequential, performance.now() - started, (machineCpuMs() - cpu) / SEQUENTIAL);
          await stopAll(mode, ids.splice(0));
          started = performance.now();
          cpu = machineCpuMs();
          const processesBefore = processCpu();
          const concurrent = await Promise.all(Array.from({ length: CONCURRENT }, () => launch(mode, ids)));
          record(`${kind}, ${mode}, ${CONCURRENT} at once`, concurrent, performance.now() - started, (machineCpuMs() - cpu) / CONCURRENT);
          cpuWhere.set(`${kind}, ${mode}, ${CONCURRENT} at once`, cpuByProcess(processesBefore, processCpu(), CONCURRENT));
          await stopAll(mode, ids);
        }
      }
    } finally {
      for (const w of watches.values()) w.close();
      await limitedAgent?.stop();
      await ipMasqAgent?.stop();
      await warmAgent?.stop();
      await agent.stop();
      await env.stop();
      network.remove();
    }
  }

  console.log(
    `\ntask network mode vs none, ${SEQUENTIAL} one at a time and ${CONCURRENT} at once, ${ROUNDS} rounds, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`,
  );
  console.log('| run | median per task (ms) | wall (ms) | CPU per task (ms) |');
  console.log('|---|---:|---:|---:|');
  const summary = new Map(
    [...results].map(([label, rounds]) => [label, { median: median(rounds.map((r) => median(r.perTask))), wall: median(rounds.map((r) => r.wall)), cpu: median(rounds.map((r) => r.cpuPerTask)) }]),
  );
  for (const [label, s] of summary) console.log(`| ${label} | ${s.median.toFixed(0)} | ${s.wall.toFixed(0)} | ${s.cpu.toFixed(0)} |`);
  console.log('\n| added by mode task | median per task | wall | CPU per task |\n|---|---:|---:|---:|');
  /** What mode `task` added to mode `none`, signed, and their ratio. */
  const added = (task: number, none: number) => `${task >= none ? '+' : '\u2212'}${Math.abs(task - none).toFixed(0)} ms (${(task / none).toFixed(2)}x)`;
  for (const kind of KINDS) {
    for (const mode of ['task', 'task, warm', 'task, ipMasq', 'task, plugins limited'] as const) {
      for (const how of ['one at a time', `${CONCURRENT} at once`]) {
        const t = summary.get(`${kind}, ${mode}, ${how}`);
        const n = summary.get(`${kind}, none, ${how}`)!;
        if (!t) continue;
        console.log(`| ${kind}, ${mode}, ${how} | ${added(t.median, n.median)} | ${added(t.wall, n.wall)} | ${added(t.cpu, n.cpu)} |`);
      }
    }
  }
  console.log(`\nWhere the CPU of the last round's ${CONCURRENT} at once went, ms per task, by process (the agent runs in the benchmark's node process):\n`);
  for (const [label, where] of cpuWhere) console.log(`- ${label}: ${where}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
