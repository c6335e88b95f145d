/**
 * What watchers cost: launch throughput and event delivery with many WatchEvents streams, every
 * part in a process of its own, the agent from the compiled build.
 *
 * 1. Launches: a control plane launches N one-container tasks (`sleep`, image present), C at
 *    once, then stops them; with no other watcher and with W watchers (each a process with one
 *    stream), which goes first alternating from round to round, each part once the agent has
 *    removed the tasks of the one before (their cleanup would overlap it). Each round also
 *    creates and starts the same N containers directly through the runtime adapter, C at once (no
 *    engine, no watcher): the runtime's own throughput. Reported: tasks/s, their ratios to each
 *    other and to the runtime's own, the agent's CPU time per task, and the delivery time of
 *    every event at every watcher (event timestamp, set as the agent commits it, to arrival in
 *    the watcher's process). Before each launch the watchers' CPU is taken with their streams
 *    open and no event, in two windows of 5 s: the first holds the tail of their start, the
 *    second what open streams cost them; the launch comes after both.
 * 2. Steady events: a task reserves all of the agent's memory; the control plane then runs and
 *    stops tasks that wait for memory, at a rate that makes RATE events/s, for SECONDS, with K
 *    watchers, WINDOWS times back to back. Reported for each window alone: the events/s delivered,
 *    their delivery times, the agent's CPU. The first windows hold the agent's warm-up at that
 *    rate (V8 optimizes the code the phase runs over its first 10–30 s on a slow 2-core VM); the
 *    last ones show the rate sustained.
 *
 * Usage: npm run build && node dist/bench/event-fanout.js [N=200] [C=50] [W=100] [ROUNDS=2]
 * [RATE=1000] [K=10] [SECONDS=10] [WINDOWS=4]. BENCH_RUNTIME=docker for Docker (containerd by default);
 * BENCH_BATCH=N for watchers asking for up to N events a message, BENCH_BATCH_DELAY_MS=M for
 * watchers also asking the agent to hold each message M ms for more events; BENCH_WATCHERS=full for
 * watchers that decode every message whole (they read only sequence and time otherwise);
 * BENCH_WATCHERS=go for watchers in Go (bench/go/event-watcher, built offline with Debian's Go as
 * the Go client's test builds it), each decoding every message whole as a Go control plane would;
 * BENCH_WATCHER_GOMAXPROCS=N gives the Go watchers that GOMAXPROCS (Go's default, the number of
 * cores, otherwise; nothing else the bench starts gets it).
 * BENCH_AGENT_NODE_ARGS passes options to the agent's node (e.g. `--cpu-prof`).
 * BENCH_WATCHER_PRIORITY=idle runs the launch phase's watchers under Linux's SCHED_IDLE policy
 * (`chrt --idle`): they take only CPU time nothing else wants, as watchers on other machines would,
 * so the ratio shows what feeding them costs the agent rather than what their own CPU takes from
 * the agent and containerd on the same cores. Needs root. SCHED_IDLE works within a cgroup: with
 * the agent in a cgroup of its own (below), BENCH_WATCHER_PRIORITY=idle-cgroup puts the launch
 * phase's watchers together in a CPU cgroup that is idle against the others (`cpu.idle`) instead.
 * BENCH_AGENT_CGROUP=own runs the agent in a CPU cgroup of its own (bench/parts/own-cgroup.ts), as
 * systemd runs it (berth.service) beside the runtime's service; by default every part shares the
 * bench's cgroup.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAgentProcess, type AgentProcess } from '../test/harness/agent-process.js';
import { startRuntimeEnvironment, type RuntimeKind } from '../test/harness/runtime-environment.js';
import { GoBuilder } from '../test/harness/go-build.js';
import { waitUntil } from '../test/harness/processes.js';
import { ControlPlane, cpuMs, forkPart, freePort, ms, nextMessage, percentile } from './parts/forked-parts.js';
import { launchDirect, removeDirect } from './parts/direct-launches.js';
import { daemonsOf, ownCpuCgroup, type OwnCgroup } from './parts/own-cgroup.js';
import type { WatcherReport } from './parts/event-watcher.js';

/** N, C, W, ROUNDS, RATE, K, SECONDS and WINDOWS when not given (see the usage above). */
const DEFAULTS = [200, 50, 100, 2, 1000, 10, 10, 4] as const;
/** A tuple of the same length with every element a number. */
type AsNumbers<T extends readonly number[]> = { -readonly [I in keyof T]: number };
const [N, C, W, ROUNDS, RATE, K, SECONDS, WINDOWS] = DEFAULTS.map((fallback, i) => Number(process.argv[2 + i] ?? fallback)) as AsNumbers<typeof DEFAULTS>;
const KIND = (process.env.BENCH_RUNTIME ?? 'containerd') as RuntimeKind;
const DECODE = process.env.BENCH_WATCHERS === 'full' || process.env.BENCH_WATCHERS === 'go' ? process.env.BENCH_WATCHERS : 'light';
/** The watchers' max_events_per_message (BENCH_BATCH; 0: one event per message). */
const BATCH = Number(process.env.BENCH_BATCH ?? 0);
/** How long the watchers' CPU is measured with their streams open and no event coming, in each of IDLE_WINDOWS windows. */
const IDLE_MEASURE_MS = 5000;
/** The first window holds the tail of the watchers' start (their runtime's collections after the snapshot); the second their steady cost. */
const IDLE_WINDOWS = 2;
/** The watchers' max_batch_delay_ms (BENCH_BATCH_DELAY_MS; 0: each message as soon as its events are ready). */
const BATCH_DELAY_MS = Number(process.env.BENCH_BATCH_DELAY_MS ?? 0);
const AGENT_MEMORY_MIB = 4096;
/** The longest the benchmark waits for the agent to have removed the tasks of a launch. */
const CLEANUP_WAIT_MS = 180_000;
/** Whether the launch phase's watchers run at idle priority: each process (BENCH_WATCHER_PRIORITY=idle) or their cgroup (idle-cgroup); or in a cgroup of their own at the default weight (BENCH_AGENT_CGROUP=services). */
const WATCHER_PRIORITY =
  process.env.BENCH_WATCHER_PRIORITY === 'idle' || process.env.BENCH_WATCHER_PRIORITY === 'idle-cgroup'
    ? process.env.BENCH_WATCHER_PRIORITY
    : process.env.BENCH_AGENT_CGROUP === 'services'
      ? 'cgroup'
      : 'normal';
/** The Go watchers' GOMAXPROCS (BENCH_WATCHER_GOMAXPROCS; Go's default, the number of cores, when unset). */
const WATCHER_GOMAXPROCS = process.env.BENCH_WATCHER_GOMAXPROCS;
/** Whether the agent runs in a CPU cgroup of its own (BENCH_AGENT_CGROUP=own), and the runtime and the watchers too (services). */
const OWN_CGROUP = process.env.BENCH_AGENT_CGROUP === 'own' || process.env.BENCH_AGENT_CGROUP === 'services';
const SERVICE_CGROUPS = process.env.BENCH_AGENT_CGROUP === 'services';

/** One of the agent's histograms, cumulative counts by upper bound in seconds. */
async function agentHistogram(metricsAddress: string, name: string): Promise<Map<number, number>> {
  const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
  const buckets = new Map<number, number>();
  for (const match of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)$`, 'gm'))) buckets.set(match[1] === '+Inf' ? Infinity : Number(match[1]), Number(match[2]));
  return buckets;
}

/** The agent's histogram of event delivery (commit to stream). */
const deliveryHistogram = (metricsAddress: string) => agentHistogram(metricsAddress, 'berth_event_delivery_seconds');
/** The agent's histogram of its state store's fsyncs. */
const fsyncHistogram = (metricsAddress: string) => agentHistogram(metricsAddress, 'berth_state_store_fsync_seconds');

/** One window of the steady phase: what was committed, delivered and spent in it. */
interface SteadyWindow {
  ms: number;
  events: number;
  agentCpuMs: number;
  received: Awaited<ReturnType<Watchers['report']>>;
  histogramBefore: Map<number, number>;
  histogramAfter: Map<number, number>;
  fsyncBefore: Map<number, number>;
  fsyncAfter: Map<number, number>;
}

/** The share of a histogram's observations between two readings within each bound up to 50 ms. */
function histogramShares(before: Map<number, number>, after: Map<number, number>): string {
  const count = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  return [...after]
    .filter(([bound]) => bound <= 0.05)
    .map(([bound, n]) => `≤${bound * 1000} ms ${((100 * (n - (before.get(bound) ?? 0))) / Math.max(count, 1)).toFixed(1)}%`)
    .join(', ');
}

/** The bucket bound (ms) under which `p`% of the observations between two scrapes fell. */
function histogramPercentile(before: Map<number, number>, after: Map<number, number>, p: number): string {
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  if (total === 0) return '-';
  for (const [bound, count] of after) if (count - (before.get(bound) ?? 0) >= (p / 100) * total) return bound === Infinity ? '>10000' : `\u2264${bound * 1000}`;
  return '-';
}

/** The Go watcher's binary, built once when BENCH_WATCHERS=go (removed with its builder at the end). */
let goBuilder: GoBuilder | undefined;
let goWatcher: Promise<string> | undefined;

/** Starts one watcher process: Node (bench/parts/event-watcher.ts) or Go, both on Node's IPC channel. */
async function startWatcher(socket: string): Promise<ChildProcess> {
  if (DECODE !== 'go') return forkPart('event-watcher.js', [socket, DECODE, String(BATCH), String(BATCH_DELAY_MS)]);
  goBuilder ??= new GoBuilder();
  goWatcher ??= goBuilder.build('bench/go/event-watcher');
  const env = WATCHER_GOMAXPROCS ? { ...process.env, GOMAXPROCS: WATCHER_GOMAXPROCS } : process.env;
  return spawn(await goWatcher, [socket, String(BATCH), String(BATCH_DELAY_MS)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env });
}

class Watchers {
  private constructor(
    private readonly children: ChildProcess[],
    private readonly cgroup: OwnCgroup | undefined,
  ) {}

  static async start(count: number, socket: string, priority: typeof WATCHER_PRIORITY = 'normal'): Promise<Watchers> {
    const children = await Promise.all(Array.from({ length: count }, () => startWatcher(socket)));
    if (priority === 'idle') for (const child of children) execFileSync('chrt', ['--idle', '--pid', '0', String(child.pid)]);
    const cgroup =
      priority === 'idle-cgroup' || priority === 'cgroup'
        ? ownCpuCgroup(
            children.map((child) => child.pid!),
            'berth-bench-watchers',
            { idle: priority === 'idle-cgroup' },
          )
        : undefined;
    await Promise.all(children.map((child, i) => nextMessage(child, (m: { type: string }) => m.type === 'ready', `watcher ${i}`, 120_000)));
    return new Watchers(children, cgroup);
  }

  /** Everything the watchers recorded since the last report, together. */
  async report(): Promise<{ sorted: number[]; events: number; messages: number; gaps: number; cpuMs: number; errors: string[] }> {
    const reports = await Promise.all(
      this.children.map((child, i) => {
        const answer = nextMessage<WatcherReport>(child, (m) => m.type === 'report', `watcher ${i} report`);
        child.send({ type: 'report' });
        return answer;
      }),
    );
    return {
      sorted: reports.flatMap((r) => r.latenciesMs).sort((a, b) => a - b),
      events: reports.reduce((sum, r) => sum + r.events, 0),
      messages: reports.reduce((sum, r) => sum + r.messages, 0),
      gaps: reports.reduce((sum, r) => sum + r.gaps, 0),
      cpuMs: reports.reduce((sum, r) => sum + r.cpuMs, 0),
      errors: reports.flatMap((r) => (r.error ? [r.error] : [])),
    };
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.send({ type: 'exit' });
            setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
          }),
      ),
    );
    this.cgroup?.remove();
  }
}

interface LaunchResult {
  watchers: number;
  tasksPerSecond: number;
  agentCpuMsPerTask: number;
  watcherCpuMsPerTask: number;
  /** The watchers' CPU while nothing happened (streams open, no event), ms a second for all of them, in each idle window in turn. */
  watcherIdleCpuMsPerSecond: number[];
  launchDelivery: number[];
  /** Events and the messages that carried them, at all the watchers together, in the launch. */
  launchEvents: number;
  launchMessages: number;
  stopDelivery: number[];
  stopMs: number;
  gaps: number;
  /** p50 and p99 of the time from commit to a stream, by the agent's histogram (launch and stop). */
  agentDelivery: [string, string];
}

async function main(): Promise<void> {
  const env = await startRuntimeEnvironment('bench-fanout', KIND);
  let agent: AgentProcess | undefined;
  let controlPlane: ControlPlane | undefined;
  let cgroup: OwnCgroup | undefined;
  // As containerd.service (or docker.service, with its containerd): the shims and runc the daemons start stay in it.
  const runtimeCgroup = SERVICE_CGROUPS ? ownCpuCgroup(daemonsOf(env.dir, ['containerd', 'dockerd']), 'berth-bench-runtime') : undefined;
  const metricsAddress = `127.0.0.1:${await freePort()}`;
  try {
    agent = await startAgentProcess({
      dir: env.dir,
      agentId: 'fanout',
      runtimeConfig: env.runtimeConfig,
      compiled: true,
      nodeArgs: process.env.BENCH_AGENT_NODE_ARGS?.split(' ').filter(Boolean),
      config: {
        engine: { defaultStopTimeout: '1s', taskCleanupWait: '5s' },
        resources: { memoryMib: AGENT_MEMORY_MIB },
        events: { maxWatcherLag: 10_000 },
        limits: { watchers: Math.max(256, W + K + 10) },
        metrics: { address: metricsAddress },
      },
    });
    const pid = agent.daemon.child.pid!;
    if (OWN_CGROUP) cgroup = ownCpuCgroup(pid, 'berth-bench-agent');
    controlPlane = await ControlPlane.start(agent, env.image, env.credentials);
    await controlPlane.do({ type: 'launch', ids: ['warm'], concurrency: 1 });
    await controlPlane.do({ type: 'stop', ids: ['warm'] });

    const launches: LaunchResult[] = [];
    const directTasksPerSecond: number[] = [];
    // The tasks of a launch are removed (containers and snapshots) 5 s after their stop; that work
    // would otherwise overlap the next part measured, and always the same one.
    const calls = agent.calls;
    const cleanedUp = () => waitUntil('the launched tasks cleaned up', CLEANUP_WAIT_MS, async () => ((await calls.list()).length === 0 ? true : undefined));
    for (let round = 0; round < ROUNDS; round++) {
      await cleanedUp();
      const directMs = await launchDirect(
        env.runtime,
        env.image,
        Array.from({ length: N }, (_, i) => `direct-${round}-${i}`),
        C,
      );
      directTasksPerSecond.push((N * 1000) / directMs);
      await removeDirect(env.runtime);
      console.error(`round ${round} direct: ${directTasksPerSecond[round]!.toFixed(1)} containers/s`);
      // Alternating which goes first, so that the VM's drift over a round does not favour one.
      for (const watcherCount of round % 2 === 0 ? [0, W] : [W, 0]) {
        await cleanedUp();
        const watchers = await Watchers.start(Math.max(watcherCount, 1), agent.socketPath, WATCHER_PRIORITY);
        // What starting took (the snapshot included) is not the launch's; then what open streams
        // cost the watchers while no event comes (their runtime's own timers, collections).
        await watchers.report();
        const watcherIdleCpuMsPerSecond: number[] = [];
        for (let window = 0; window < IDLE_WINDOWS; window++) {
          const idleFrom = performance.now();
          await sleep(IDLE_MEASURE_MS);
          watcherIdleCpuMsPerSecond.push((await watchers.report()).cpuMs / ((performance.now() - idleFrom) / 1000));
        }
        const ids = Array.from({ length: N }, (_, i) => `r${round}-w${watcherCount}-${i}`);
        const histogramBefore = await deliveryHistogram(metricsAddress);
        const cpuBefore = cpuMs(pid);
        const launched = await controlPlane.do({ type: 'launch', ids, concurrency: C });
        const cpuAfter = cpuMs(pid);
        const launchReport = await watchers.report();
        const stopped = await controlPlane.do({ type: 'stop', ids });
        const stopReport = await watchers.report();
        const histogramAfter = await deliveryHistogram(metricsAddress);
        await watchers.stop();
        for (const error of [...launchReport.errors, ...stopReport.errors]) console.error(`watcher: ${error}`);
        launches.push({
          watchers: watcherCount,
          tasksPerSecond: (N * 1000) / launched.ms,
          agentCpuMsPerTask: (cpuAfter - cpuBefore) / N,
          watcherCpuMsPerTask: launchReport.cpuMs / N,
          watcherIdleCpuMsPerSecond,
          launchDelivery: launchReport.sorted,
          launchEvents: launchReport.events,
          launchMessages: launchReport.messages,
          stopDelivery: stopReport.sorted,
          stopMs: stopped.ms,
          gaps: launchReport.gaps + stopReport.gaps,
          agentDelivery: [histogramPercentile(histogramBefore, histogramAfter, 50), histogramPercentile(histogramBefore, histogramAfter, 99)],
        });
        const last = launches[launches.length - 1]!;
        console.error(`round ${round} watchers ${watcherCount}: ${last.tasksPerSecond.toFixed(1)} tasks/s, delivery p99 ${ms(percentile(last.launchDelivery, 99))} ms`);
      }
    }

    // 2. Steady events with K watchers, once the launches' tasks are cleaned up (their containers
    // and snapshots removed 5 s after the stop): that removal's disk writes would otherwise slow
    // the store's fsyncs during the phase.
    await cleanedUp();
    // The blocker reserves all of the agent's memory: the tasks of the churn then wait for memory
    // and stop without reaching the runtime, and every event is the engine's own.
    await controlPlane.do({ type: 'launch', ids: ['blocker'], concurrency: 1, memoryMib: AGENT_MEMORY_MIB });
    const info = async () => (await agent!.calls.info())!;
    const calibrateFrom = (await info()).latestSequence;
    await controlPlane.do({ type: 'churn', prefix: 'calibrate', perSecond: 50, seconds: 1, memoryMib: 64 });
    const eventsPerPair = ((await info()).latestSequence - calibrateFrom) / 50;
    const watchers = await Watchers.start(K, agent.socketPath);
    // The phase runs in WINDOWS windows of SECONDS back to back, each reported alone: the first
    // ones hold the agent's warm-up at this rate (V8 still optimizing the code the phase runs),
    // the last ones what a sustained rate costs.
    const steadyWindows: SteadyWindow[] = [];
    for (let window = 0; window < WINDOWS; window++) {
      const from = (await info()).latestSequence;
      const histogramBefore = await deliveryHistogram(metricsAddress);
      const fsyncBefore = await fsyncHistogram(metricsAddress);
      const cpuBefore = cpuMs(pid);
      const churned = await controlPlane.do({ type: 'churn', prefix: `steady${window}`, perSecond: RATE / eventsPerPair, seconds: SECONDS, memoryMib: 64 });
      const agentCpuMs = cpuMs(pid) - cpuBefore;
      const events = (await info()).latestSequence - from;
      const received = await watchers.report();
      steadyWindows.push({
        ms: churned.ms,
        events,
        agentCpuMs,
        received,
        histogramBefore,
        histogramAfter: await deliveryHistogram(metricsAddress),
        fsyncBefore,
        fsyncAfter: await fsyncHistogram(metricsAddress),
      });
    }
    await watchers.stop();

    const rows = (watchers: number) => launches.filter((l) => l.watchers === watchers);
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    const joined = (watchers: number, pick: (l: LaunchResult) => number[]) =>
      rows(watchers)
        .flatMap(pick)
        .sort((a, b) => a - b);
    console.log(`\n${new Date().toISOString().slice(0, 10)}, ${KIND}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`);
    console.log(
      `launch ${N} tasks, ${C} at once, ${ROUNDS} rounds; each watcher a process with one stream, ${BATCH > 1 ? `up to ${BATCH} events a message` : 'one event a message'}${BATCH_DELAY_MS > 0 ? `, each held up to ${BATCH_DELAY_MS} ms for more` : ''}, decoding ${DECODE === 'light' ? "each event's sequence and time" : DECODE === 'go' ? 'every message whole, in Go' : 'every message whole'}${WATCHER_PRIORITY === 'idle' ? ', at idle priority (SCHED_IDLE)' : WATCHER_PRIORITY === 'idle-cgroup' ? ', in a CPU cgroup idle against the others (cpu.idle)' : ''}${SERVICE_CGROUPS ? '; the agent, the runtime and the watchers each in a CPU cgroup of their own' : OWN_CGROUP ? '; the agent in a CPU cgroup of its own' : ''}\n`,
    );
    console.log(
      '| watchers | tasks/s | agent CPU ms per task | watchers’ CPU ms per task | launch: events a message | watchers’ CPU at idle, ms/s (first 5 s / next 5 s) | agent: commit → stream p50 / p99 (ms) | launch: commit → watcher p50 / p99 (ms) | stop of all: commit → watcher p50 / p99 (ms) | gaps |',
    );
    console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const w of [0, W]) {
      const launchSorted = joined(w, (l) => l.launchDelivery);
      const stopSorted = joined(w, (l) => l.stopDelivery);
      console.log(
        `| ${w === 0 ? '1 (the control plane\u2019s and one)' : w} | ${mean(rows(w).map((l) => l.tasksPerSecond)).toFixed(1)} | ${mean(rows(w).map((l) => l.agentCpuMsPerTask)).toFixed(1)} | ${mean(rows(w).map((l) => l.watcherCpuMsPerTask)).toFixed(1)} | ${(rows(w).reduce((s, l) => s + l.launchEvents, 0) / rows(w).reduce((s, l) => s + l.launchMessages, 0)).toFixed(2)} | ${Array.from({ length: IDLE_WINDOWS }, (_, i) => mean(rows(w).map((l) => l.watcherIdleCpuMsPerSecond[i]!)).toFixed(1)).join(' / ')} | ${rows(
          w,
        )
          .map((l) => l.agentDelivery.join(' / '))
          .join(
            ', ',
          )} | ${ms(percentile(launchSorted, 50))} / ${ms(percentile(launchSorted, 99))} | ${ms(percentile(stopSorted, 50))} / ${ms(percentile(stopSorted, 99))} | ${rows(w).reduce((s, l) => s + l.gaps, 0)} |`,
      );
    }
    const [alone, watched, direct] = [mean(rows(0).map((l) => l.tasksPerSecond)), mean(rows(W).map((l) => l.tasksPerSecond)), mean(directTasksPerSecond)];
    console.log(`| the runtime's own create+start, ${C} at once (no engine, no watcher) | ${direct.toFixed(1)} | | | | | | | | |`);
    console.log(`\nthroughput with ${W} watchers / without: ${(watched / alone).toFixed(3)}`);
    console.log(`throughput / the runtime's own: ${(alone / direct).toFixed(3)} without watchers, ${(watched / direct).toFixed(3)} with ${W}`);
    for (const [i, w] of steadyWindows.entries()) {
      const sorted = w.received.sorted;
      console.log(
        `\nsteady events, window ${i + 1} of ${WINDOWS}, ${(w.ms / 1000).toFixed(1)} s: ${((w.events * 1000) / w.ms).toFixed(0)} events/s committed (${eventsPerPair.toFixed(1)} per run+stop), ${K} watchers received ${w.received.events} (${((w.received.events * 1000) / w.ms / K).toFixed(0)}/s each), gaps ${w.received.gaps}, watchers’ CPU ${(w.received.cpuMs / K).toFixed(0)} ms each, the agent's ${((w.agentCpuMs * 1000) / w.ms).toFixed(0)} ms a second; commit → watcher p50 ${ms(percentile(sorted, 50))} ms, p99 ${ms(percentile(sorted, 99))} ms, max ${ms(sorted[sorted.length - 1] ?? NaN)} ms; agent: commit → stream p50 ${histogramPercentile(w.histogramBefore, w.histogramAfter, 50)} ms, p99 ${histogramPercentile(w.histogramBefore, w.histogramAfter, 99)} ms; the store's fsyncs: ${(w.fsyncAfter.get(Infinity) ?? 0) - (w.fsyncBefore.get(Infinity) ?? 0)}, p50 ${histogramPercentile(w.fsyncBefore, w.fsyncAfter, 50)} ms, p99 ${histogramPercentile(w.fsyncBefore, w.fsyncAfter, 99)} ms`,
      );
      console.log(`  the agent's histograms: commit → stream ${histogramShares(w.histogramBefore, w.histogramAfter)}; the store's fsyncs ${histogramShares(w.fsyncBefore, w.fsyncAfter)}`);
    }
  } finally {
    controlPlane?.stop();
    await agent?.stop();
    cgroup?.remove();
    await env.stop();
    runtimeCgroup?.remove();
    goBuilder?.remove();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
