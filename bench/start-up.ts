/**
 * Start-up: the time from spawning the agent's process to its gRPC socket listening and to "berth
 * started", by the agent's own log times, on containerd; with an empty data directory, then
 * restarting on the same one, ROUNDS times each; the bundle the `berth` bin runs
 * (dist/berth.mjs) beside tsc's output it is made of (dist/src/main.js, a file per module). Idle
 * memory is read one second after start and, in the last round, once it has settled (V8 gives back
 * the young generation start-up grew only after a quiet while).
 * `node -e 0` is measured beside them: the part no agent can save. Where the time goes is printed
 * from the last restart's log lines.
 *
 * Usage: npm run build && node dist/bench/start-up.js [ROUNDS=5]. Needs root.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AGENT_NODE_OPTIONS } from '../src/agent-node-options.js';
import { PACKAGE_ROOT } from '../src/package-root.js';
import { rssMib, settledRssMib } from './parts/forked-parts.js';
import { startRuntimeEnvironment } from '../test/harness/runtime-environment.js';

const ROUNDS = Number(process.argv[2] ?? 5);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

interface StartUp {
  /** ms from spawn to each log message, in order. */
  marks: { msg: string; ms: number }[];
  listening: number;
  started: number;
  /** RSS (MiB) one second after "berth started", idle. */
  idleRss: number;
  /** RSS (MiB) once it settled, idle (see settledRssMib), when measured. */
  settledRss?: number;
}

const ENTRIES = { bundle: 'dist/berth.mjs', modules: 'dist/src/main.js' } as const;
type Entry = keyof typeof ENTRIES;

/** Starts the agent, reads its log until "berth started", reads its idle RSS a second later, then stops it with SIGTERM. */
async function startOnce(entry: Entry, configFile: string, settle: boolean): Promise<StartUp> {
  const spawned = Date.now();
  const child = spawn(process.execPath, [...AGENT_NODE_OPTIONS, join(PACKAGE_ROOT!, ENTRIES[entry]), '--config', configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const marks: StartUp['marks'] = [];
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  for await (const line of createInterface({ input: child.stdout! })) {
    const entry = JSON.parse(line) as { msg: string; time: number };
    marks.push({ msg: entry.msg, ms: entry.time - spawned });
    if (entry.msg === 'berth started') break;
  }
  clearTimeout(timer);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const idleRss = rssMib(child.pid!);
  const settledRss = settle ? await settledRssMib(child.pid!) : undefined;
  child.kill('SIGTERM');
  await exited;
  const at = (msg: string) => marks.find((m) => m.msg === msg)?.ms ?? NaN;
  return { marks, listening: at('listening on unix socket'), started: at('berth started'), idleRss, settledRss };
}

async function nodeAlone(): Promise<number> {
  const started = performance.now();
  await new Promise((resolve) => spawn(process.execPath, ['-e', '0']).once('exit', resolve));
  return performance.now() - started;
}

async function main(): Promise<void> {
  const env = await startRuntimeEnvironment('bench-startup', 'containerd');
  try {
    const dir = mkdtempSync(join(env.dir, 'agent-'));
    const configFile = join(dir, 'config.json');
    const results = { bundle: { fresh: [] as StartUp[], restart: [] as StartUp[] }, modules: { fresh: [] as StartUp[], restart: [] as StartUp[] }, node: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const entry of ['modules', 'bundle'] as const) {
        const dataDir = join(dir, `data-${entry}-${round}`);
        writeFileSync(configFile, JSON.stringify({ agentId: 'startup', dataDir, grpc: { socket: join(dataDir, 'berth.sock') }, runtime: env.runtimeConfig }));
        // Settling takes half a minute or more: measured in the last round only.
        const settle = round === ROUNDS - 1;
        results[entry].fresh.push(await startOnce(entry, configFile, settle));
        results[entry].restart.push(await startOnce(entry, configFile, settle));
      }
      results.node.push(await nodeAlone());
    }
    console.log(`\n${new Date().toISOString().slice(0, 10)}, containerd, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}, ${ROUNDS} rounds, medians\n`);
    console.log('| start | socket listening (ms) | "berth started" (ms) | RSS 1 s after (MiB) | RSS settled, last round (MiB) |');
    console.log('|---|---:|---:|---:|---:|');
    for (const entry of ['modules', 'bundle'] as const) {
      for (const kind of ['fresh', 'restart'] as const) {
        const runs = results[entry][kind];
        const start = kind === 'fresh' ? 'empty data directory' : 'restart on the same data';
        console.log(
          `| ${ENTRIES[entry]}, ${start} | ${median(runs.map((r) => r.listening)).toFixed(0)} | ${median(runs.map((r) => r.started)).toFixed(0)} | ${median(runs.map((r) => r.idleRss)).toFixed(0)} | ${runs.at(-1)!.settledRss?.toFixed(0)} |`,
        );
      }
    }
    console.log(`| \`node -e 0\` (exit) | | ${median(results.node).toFixed(0)} | | |`);
    for (const entry of ['modules', 'bundle'] as const) {
      console.log(`\nlog of the last restart of ${ENTRIES[entry]} (ms from spawn):`);
      for (const mark of results[entry].restart.at(-1)!.marks) console.log(`  ${String(mark.ms).padStart(5)}  ${mark.msg}`);
    }
  } finally {
    await env.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
