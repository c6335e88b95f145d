/**
 * Density and memory on containerd, every part in a process of its own, the agent from the
 * compiled build:
 * 1. the agent's memory idle, with N running one-container tasks, and after they were stopped and
 *    cleaned up; the launch of the N against the runtime's own create+start of N containers
 *    through the adapter, C at once, from the same empty start (their ratio);
 * 2. with N running: GetAgentInfo, GetTask and ListTasks (every page) as a client sees them (a
 *    new client's first ListTasks apart, then a warm client's), ListTasks the same way from a Go
 *    control plane in a process of its own (bench/go/list-tasks, through berthclient), and
 *    ListTasks' first page of 1,000 as it arrives (not decoded: the agent's part), the
 *    duration of a full relist (the agent's `berth_runtime_sync_last_duration_seconds`, after a
 *    relist that comes every 30 s here), and recovery after SIGKILL (spawn of the new agent to its
 *    "recovered every task" line);
 * 3. a leak check: CYCLES cycles of launching M tasks, stopping them and waiting for their cleanup;
 *    the agent's RSS after each, as it is and settled (no new low for 2 minutes; the goal compares
 *    the last's settled RSS with the first's). Then its live heap, from heap snapshots (which
 *    collect garbage first) after the last cycle and after two more, with its data apart from V8's
 *    compiled code. When the RSS grew by more than 10%, or the heap's data by more than 5%, the
 *    constructors that grew most between the two snapshots are printed.
 *
 * Usage: npm run build && node dist/bench/density.js [N=1000] [C=50] [CYCLES=10] [M=500] (N=0: the
 * leak check only). BENCH_AGENT_NODE_ARGS passes options to the agent's node (e.g.
 * `--cpu-prof`; profiles go to the heap snapshots' directory). Needs
 * root, and about 15 MiB of host memory per running task (containerd's shim and berth's log writer).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Client, credentials } from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ListTasksRequest, TaskServiceClient, type ListTasksResponse } from '../src/gen/berth/agent/v1/task_service.js';
import { call } from '../test/harness/agent.js';
import { GoBuilder } from '../test/harness/go-build.js';
import { startAgentProcess, type AgentProcess } from '../test/harness/agent-process.js';
import { startRuntimeEnvironment } from '../test/harness/runtime-environment.js';
import { launchDirect, removeDirect } from './parts/direct-launches.js';
import { ControlPlane, freePort, metricSample, ms, percentile, rssMib, settledRssMib } from './parts/forked-parts.js';

const [N, C, CYCLES, M] = [1000, 50, 10, 500].map((fallback, i) => Number(process.argv[2 + i] ?? fallback)) as [number, number, number, number];
/** Growth of the settled RSS over the cycles that fails the leak check (BENCH_LEAK_THRESHOLD, default 0.1). */
const LEAK_THRESHOLD = Number(process.env.BENCH_LEAK_THRESHOLD ?? 0.1);
/**
 * The leak check's RSS is read once it has made no new low for this long (at most the second
 * figure). With 30 s, V8 had not yet given back its old generation after some cycles (77–100 MiB
 * committed against 20–24) and the settled RSS moved by 60% from cycle to cycle; with 120 s it was
 * given back after every cycle. A cycle then takes about 4 minutes.
 */
const [LEAK_SETTLE_QUIET_SECONDS, LEAK_SETTLE_MAX_SECONDS] = [120, 300];
/** Cycles between the leak check's two heap snapshots, after its last cycle. */
const DIAGNOSTIC_CYCLES = 2;
const ids = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}-${i}`);

/** Times `run` `times` times; sorted durations in ms. */
async function timed(times: number, run: (i: number) => Promise<unknown>): Promise<number[]> {
  const durations: number[] = [];
  for (let i = 0; i < times; i++) {
    const started = performance.now();
    await run(i);
    durations.push(performance.now() - started);
  }
  return durations.sort((a, b) => a - b);
}

/** What bench/go/list-tasks prints: the tasks its first listing returned, and each listing's time. */
interface GoListing {
  tasks: number;
  firstMs: number;
  ms: number[];
}

/** Runs the Go control plane's listings (a new process): `rounds` more after its first. */
async function goListings(binary: string, socket: string, pageSize: number, rounds: number): Promise<GoListing> {
  const { stdout } = await promisify(execFile)(binary, [socket, String(pageSize), String(rounds)], { timeout: 300_000 });
  return JSON.parse(stdout) as GoListing;
}

/** Resolves once `check` returns a value, trying every `everyMs` for at most `timeoutMs`. */
async function until<T>(what: string, timeoutMs: number, everyMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** The time (ms since the epoch) of the last agent log line with message `msg`. */
function lastLogTime(logFile: string, msg: string): number | undefined {
  const lines = readFileSync(logFile, 'utf8').trim().split('\n').reverse();
  for (const line of lines) {
    try {
      const entry = JSON.parse(line) as { msg?: string; time?: number };
      if (entry.msg === msg) return entry.time;
    } catch {
      // not a log line of the agent's
    }
  }
  return undefined;
}

/** What a V8 heap snapshot holds: by constructor name (count and self size), and the bytes of V8's compiled code. */
interface HeapSummary {
  byName: Map<string, { count: number; bytes: number }>;
  /** Nodes of type `code`: bytecode, optimized code and their metadata, which grow as functions get hot. */
  codeBytes: number;
  totalBytes: number;
}

function heapSummary(file: string): HeapSummary {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as { snapshot: { meta: { node_fields: string[]; node_types: unknown[] } }; nodes: number[]; strings: string[] };
  const fields = snapshot.snapshot.meta.node_fields;
  const typeAt = fields.indexOf('type');
  const codeType = (snapshot.snapshot.meta.node_types[typeAt] as string[]).indexOf('code');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const summary: HeapSummary = { byName: new Map(), codeBytes: 0, totalBytes: 0 };
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    const name = snapshot.strings[snapshot.nodes[i + nameAt]!]!;
    const bytes = snapshot.nodes[i + sizeAt]!;
    const entry = summary.byName.get(name) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += bytes;
    summary.byName.set(name, entry);
    summary.totalBytes += bytes;
    if (snapshot.nodes[i + typeAt] === codeType) summary.codeBytes += bytes;
  }
  return summary;
}

async function main(): Promise<void> {
  const env = await startRuntimeEnvironment('bench-density', 'containerd');
  const metricsAddress = `127.0.0.1:${await freePort()}`;
  // Outside the environment's directory, which goes with it: snapshots taken are kept.
  const snapshots = mkdtempSync(join(tmpdir(), 'berth-density-heap-'));
  const options = {
    dir: env.dir,
    agentId: 'density',
    runtimeConfig: env.runtimeConfig,
    compiled: true,
    nodeArgs: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshots}`, ...(process.env.BENCH_AGENT_NODE_ARGS?.split(' ').filter(Boolean) ?? [])],
    config: {
      engine: { defaultStopTimeout: '1s', taskCleanupWait: '1s', relistInterval: '30s' },
      metrics: { address: metricsAddress },
      limits: { watchers: 256 },
    },
  };
  let agent: AgentProcess | undefined = await startAgentProcess(options);
  let controlPlane: ControlPlane | undefined;
  const heapMib = async () => ((await metricSample(metricsAddress, 'berth_nodejs_heap_size_used_bytes')) ?? NaN) / 2 ** 20;
  /** Where the agent's RSS is: V8's heap as committed, and the kernel's split of anonymous and file pages. */
  const memoryParts = async () => {
    const status = readFileSync(`/proc/${agent!.daemon.child.pid!}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN) / 1024;
    const heapTotal = ((await metricSample(metricsAddress, 'berth_nodejs_heap_size_total_bytes')) ?? NaN) / 2 ** 20;
    const space = async (name: string) => ((await metricSample(metricsAddress, 'berth_nodejs_heap_space_size_total_bytes', `space="${name}"`)) ?? NaN) / 2 ** 20;
    const [young, old] = [await space('new'), await space('old')];
    return `(anonymous ${kib('RssAnon').toFixed(0)}, file ${kib('RssFile').toFixed(0)} MiB; V8 heap committed ${heapTotal.toFixed(0)} MiB, of which young ${young.toFixed(0)} and old ${old.toFixed(0)})`;
  };
  const lines: string[] = [];
  const report = (line: string) => {
    lines.push(line);
    console.error(line);
  };
  // Heap snapshots (each begins with a full garbage collection) show what the agent's JavaScript keeps.
  const snapshot = async () => {
    const before = new Set(readdirSafe(snapshots));
    agent!.daemon.child.kill('SIGUSR2');
    const file = join(snapshots, await until('heap snapshot', 120_000, 500, async () => readdirSafe(snapshots).find((f) => !before.has(f) && f.endsWith('.heapsnapshot'))));
    // Written while the agent runs: done once its size stops changing.
    let size = -1;
    await until('heap snapshot written', 300_000, 1000, async () => {
      const now = statSync(file).size;
      const stable = now > 0 && now === size;
      size = now;
      return stable ? true : undefined;
    });
    return heapSummary(file);
  };
  const live = (summary: HeapSummary) => summary.totalBytes / 2 ** 20;
  /** The live heap without V8's compiled code: what the agent's own JavaScript keeps. */
  const data = (summary: HeapSummary) => (summary.totalBytes - summary.codeBytes) / 2 ** 20;
  /** The 15 constructors whose objects grew most from `from` to `to`, by self size. */
  const reportGrowth = (from: HeapSummary, to: HeapSummary) => {
    const grew = [...to.byName]
      .map(([name, s]) => ({ name, count: s.count - (from.byName.get(name)?.count ?? 0), bytes: s.bytes - (from.byName.get(name)?.bytes ?? 0) }))
      .sort((a, b) => b.bytes - a.bytes);
    for (const g of grew.slice(0, 15)) report(`  ${g.bytes.toString().padStart(10)} B  ${g.count.toString().padStart(7)}  ${g.name.slice(0, 80)}`);
  };
  try {
    await new Promise((resolve) => setTimeout(resolve, 3000));
    report(`idle, fresh agent: RSS ${rssMib(agent.daemon.child.pid!).toFixed(0)} MiB, heap used ${(await heapMib()).toFixed(0)} MiB`);
    report(`idle, fresh agent, settled: RSS ${(await settledRssMib(agent.daemon.child.pid!)).toFixed(0)} MiB, heap used ${(await heapMib()).toFixed(0)} MiB ${await memoryParts()}`);
    controlPlane = await ControlPlane.start(agent, env.image, env.credentials);
    await controlPlane.do({ type: 'launch', ids: ['warm'], concurrency: 1 });
    await controlPlane.do({ type: 'stop', ids: ['warm'] });
    await controlPlane.do({ type: 'removed', ids: ['warm'] });
    report(`idle, after one task: RSS ${rssMib(agent.daemon.child.pid!).toFixed(0)} MiB, heap used ${(await heapMib()).toFixed(0)} MiB`);

    // 1–2. N running tasks (skipped when N is 0).
    if (N > 0) {
      // Built before the launches, so that the build's CPU is not theirs.
      const goBuilder = new GoBuilder();
      const goLister = await goBuilder.build('bench/go/list-tasks');
      const running = ids('dense', N);
      const launched = await controlPlane.do({ type: 'launch', ids: running, concurrency: C });
      const launchedPerSecond = (N * 1000) / launched.ms;
      report(`${N} tasks launched, ${C} at once, in ${(launched.ms / 1000).toFixed(1)} s (${launchedPerSecond.toFixed(1)} tasks/s)`);
      report(`${N} running: RSS ${rssMib(agent.daemon.child.pid!).toFixed(0)} MiB, heap used ${(await heapMib()).toFixed(0)} MiB ${await memoryParts()}`);
      report(`${N} running, settled: RSS ${(await settledRssMib(agent.daemon.child.pid!)).toFixed(0)} MiB, heap used ${(await heapMib()).toFixed(0)} MiB ${await memoryParts()}`);
      const client = new TaskServiceClient(`unix://${agent.socketPath}`, credentials.createInsecure());
      // The same calls from a client whose HTTP/2 receive window holds a whole page (grpc-js's
      // default window is 64 KiB: a page of 1,000 tasks then needs several round trips).
      const wideClient = new TaskServiceClient(`unix://${agent.socketPath}`, credentials.createInsecure(), { 'grpc-node.flow_control_window': 4 * 2 ** 20 });
      const info = await timed(20, () => call(client, 'getAgentInfo', {}));
      const get = await timed(20, (i) => call(client, 'getTask', { taskId: running[(i * 37) % N] }));
      const listAllOnce = async (through: TaskServiceClient) => {
        let pageToken = '';
        do pageToken = (await call<object, ListTasksResponse>(through, 'listTasks', { statuses: [], family: '', pageSize: 1000, pageToken })).nextPageToken;
        while (pageToken);
      };
      const listAll = (through: TaskServiceClient) => timed(10, () => listAllOnce(through));
      // A control plane's first decoding of Task messages runs V8's unoptimized code: the first
      // call is timed apart, and the figures after it are a running (warm) client's.
      const coldList = await timed(1, () => listAllOnce(client));
      await timed(3, () => listAllOnce(client));
      const list = await listAll(client);
      const wideList = await listAll(wideClient);
      // The first page's bytes as they arrive, not decoded: what the agent takes, without the
      // client's decoding of 1,000 tasks.
      const rawClient = new Client(`unix://${agent.socketPath}`, credentials.createInsecure(), { 'grpc-node.flow_control_window': 4 * 2 ** 20 });
      const rawPage = await timed(10, () => rawListTasksPage(rawClient, 1000));
      client.close();
      wideClient.close();
      rawClient.close();
      const goListing = await goListings(goLister, agent.socketPath, 1000, 10).finally(() => goBuilder.remove());
      if (goListing.tasks !== N) throw new Error(`the Go client listed ${goListing.tasks} tasks, not ${N}`);
      const goFirstListing: number[] = [goListing.firstMs];
      for (const [name, durations] of [
        ['GetAgentInfo', info],
        ['GetTask', get],
        ["ListTasks (all pages of 1000), a new client's first call", coldList],
        ['ListTasks (all pages of 1000)', list],
        ['ListTasks (all pages of 1000), 4 MiB receive window', wideList],
        ['ListTasks (first page of 1000, 4 MiB receive window, not decoded)', rawPage],
        ["ListTasks (all pages of 1000), a new Go client's first call", goFirstListing],
        ['ListTasks (all pages of 1000), a Go client', goListing.ms.sort((a, b) => a - b)],
      ] as const) {
        report(`${name} with ${N} tasks: median ${ms(percentile(durations, 50))} ms, max ${ms(durations[durations.length - 1]!)} ms`);
      }
      const syncs = (await metricSample(metricsAddress, 'berth_runtime_syncs_total')) ?? 0;
      await until('a relist', 60_000, 500, async () => (((await metricSample(metricsAddress, 'berth_runtime_syncs_total')) ?? 0) > syncs ? true : undefined));
      report(`full relist with ${N} tasks: ${(((await metricSample(metricsAddress, 'berth_runtime_sync_last_duration_seconds')) ?? NaN) * 1000).toFixed(0)} ms`);

      // After the figures above: a snapshot raises the agent's RSS.
      const withTasks = await snapshot();
      report(`live heap with ${N} running: ${live(withTasks).toFixed(1)} MiB, of which ${data(withTasks).toFixed(1)} MiB data`);

      controlPlane.stop();
      controlPlane = undefined;
      await agent.kill();
      const spawned = Date.now();
      agent = await startAgentProcess(options);
      const recovered = await until('recovery', 120_000, 100, async () => {
        const time = lastLogTime(join(env.dir, 'agent.log'), 'recovered every task from the state store');
        return time !== undefined && time >= spawned ? time : undefined;
      });
      report(`recovery after SIGKILL with ${N} tasks: ${recovered - spawned} ms from spawn to every task resumed`);

      controlPlane = await ControlPlane.start(agent, env.image, env.credentials);
      await controlPlane.do({ type: 'stop', ids: running });
      await controlPlane.do({ type: 'removed', ids: running });
      report(`after stopping and cleaning up ${N}: RSS ${rssMib(agent.daemon.child.pid!).toFixed(0)} MiB, heap used ${(await heapMib()).toFixed(0)} MiB`);
      report(`after stopping and cleaning up ${N}, settled: RSS ${(await settledRssMib(agent.daemon.child.pid!)).toFixed(0)} MiB, heap used ${(await heapMib()).toFixed(0)} MiB`);
      const withoutTasks = await snapshot();
      report(
        `live heap after they were cleaned up (the agent that recovered them): ${live(withoutTasks).toFixed(1)} MiB, of which ${data(withoutTasks).toFixed(1)} MiB data; what ${N} running tasks held (heap snapshots in ${snapshots}):`,
      );
      reportGrowth(withoutTasks, withTasks);

      // The runtime's own throughput for the same N containers, from the same empty start.
      const directMs = await launchDirect(env.runtime, env.image, ids('direct', N), C);
      const directPerSecond = (N * 1000) / directMs;
      await removeDirect(env.runtime);
      report(
        `the runtime's own create+start of ${N} containers, ${C} at once: ${(directMs / 1000).toFixed(1)} s (${directPerSecond.toFixed(1)}/s); berth's launch of ${N} / the runtime's own: ${(launchedPerSecond / directPerSecond).toFixed(3)}`,
      );
    }

    // 3. Leak check: the agent's settled RSS after the last cycle against after the first, with no
    // heap snapshot between them: a snapshot raises the RSS by itself, and the C heap keeps much of
    // it for minutes (115 MiB settled after cycle 1, 150-195 after each later one, on 2026-12-08,
    // read with 30 s of quiet).
    // The live heap is read from heap snapshots afterwards: one after the last cycle and one after
    // DIAGNOSTIC_CYCLES more (each begins with a full garbage collection; the heap in use at any
    // other moment depends on when the collector last ran).
    const cycle = async (name: string) => {
      const batch = ids(name, M);
      await controlPlane!.do({ type: 'launch', ids: batch, concurrency: C });
      await controlPlane!.do({ type: 'stop', ids: batch });
      await controlPlane!.do({ type: 'removed', ids: batch });
      const now = rssMib(agent!.daemon.child.pid!);
      // Right after a cycle the RSS still holds its garbage, which V8 and the C heap give back in
      // their own time: after some cycles V8 kept its old generation for more than 30 s.
      return { now, settled: await settledRssMib(agent!.daemon.child.pid!, LEAK_SETTLE_QUIET_SECONDS, LEAK_SETTLE_MAX_SECONDS) };
    };
    if (CYCLES > 0) {
      let firstRss = 0;
      let lastRss = 0;
      for (let i = 0; i < CYCLES; i++) {
        const rss = await cycle(`cycle${i}`);
        report(`cycle ${i + 1}, ${M} tasks launched, stopped and cleaned up: RSS ${rss.now.toFixed(0)} MiB, settled ${rss.settled.toFixed(0)} MiB ${await memoryParts()}`);
        if (i === 0) firstRss = rss.settled;
        lastRss = rss.settled;
      }
      const rssGrowth = lastRss / firstRss - 1;
      report(`settled RSS after cycle ${CYCLES}: ${(1 + rssGrowth).toFixed(3)} times cycle 1's${rssGrowth > LEAK_THRESHOLD ? ` — more than ${LEAK_THRESHOLD * 100}% above it` : ''}`);
      const first = await snapshot();
      for (let i = 0; i < DIAGNOSTIC_CYCLES; i++) await cycle(`more${i}`);
      const last = await snapshot();
      const growth = live(last) / live(first) - 1;
      report(
        `live heap after cycle ${CYCLES}: ${live(first).toFixed(1)} MiB (data ${data(first).toFixed(1)}, V8's compiled code ${(first.codeBytes / 2 ** 20).toFixed(1)}); ` +
          `after ${DIAGNOSTIC_CYCLES} more: ${live(last).toFixed(1)} MiB, ${(1 + growth).toFixed(3)} times (data ${data(last).toFixed(1)} MiB, ${(data(last) / data(first)).toFixed(3)} times; ` +
          `V8's compiled code ${(last.codeBytes / 2 ** 20).toFixed(1)} MiB, ${(last.codeBytes / first.codeBytes).toFixed(3)} times)`,
      );
      if (rssGrowth > LEAK_THRESHOLD || data(last) / data(first) - 1 > LEAK_THRESHOLD / 2) {
        report(`what grew most between the two heap snapshots (kept in ${snapshots}):`);
        reportGrowth(first, last);
      }
    }
    console.log(`\n${new Date().toISOString().slice(0, 10)}, containerd, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`);
    for (const line of lines) console.log(`- ${line}`);
  } finally {
    controlPlane?.stop();
    await agent?.stop();
    await env.stop();
    if (readdirSafe(snapshots).length === 0) rmSync(snapshots, { recursive: true, force: true });
  }
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

/** One ListTasks call whose answer is kept as the bytes received. */
function rawListTasksPage(client: Client, pageSize: number): Promise<Buffer> {
  const request = ListTasksRequest.fromPartial({ pageSize });
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      '/berth.agent.v1.TaskService/ListTasks',
      (r: ListTasksRequest) => Buffer.from(ListTasksRequest.encode(r).finish()),
      (bytes: Buffer) => bytes,
      request,
      (error, bytes) => (error || !bytes ? reject(error ?? new Error('no answer')) : resolve(bytes)),
    ),
  );
}
