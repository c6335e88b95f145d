/**
 * Start-up: the time from spawning the agent's process (the compiled build, `node
 * dist/src/main.js`) to its gRPC socket listening and to "berth started", by the agent's own log
 * times, on containerd; with an empty data directory, then restarting on the same one, ROUNDS
 * times each. `node -e 0` is measured beside it: the part no agent can save. Where the time goes
 * is printed from the first start's log lines.
 *
 * Usage: npm run build && node dist/bench/start-up.js [ROUNDS=5]. Needs root.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PACKAGE_ROOT } from '../src/package-root.js';
import { startRuntimeEnvironment } from '../test/harness/runtime-environment.js';

const ROUNDS = Number(process.argv[2] ?? 5);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

interface StartUp {
  /** ms from spawn to each log message, in order. */
  marks: { msg: string; ms: number }[];
  listening: number;
  started: number;
}

/** Starts the agent, reads its log until "berth started", then stops it with SIGTERM. */
async function startOnce(configFile: string): Promise<StartUp> {
  const spawned = Date.now();
  const child = spawn(process.execPath, [join(PACKAGE_ROOT!, 'dist/src/main.js'), '--config', configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const marks: StartUp['marks'] = [];
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  for await (const line of createInterface({ input: child.stdout! })) {
    const entry = JSON.parse(line) as { msg: string; time: number };
    marks.push({ msg: entry.msg, ms: entry.time - spawned });
    if (entry.msg === 'berth started') break;
  }
  clearTimeout(timer);
  child.kill('SIGTERM');
  await exited;
  const at = (msg: string) => marks.find((m) => m.msg === msg)?.ms ?? NaN;
  return { marks, listening: at('listening on unix socket'), started: at('berth started') };
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
    const results = { fresh: [] as StartUp[], restart: [] as StartUp[], node: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      const dataDir = join(dir, `data-${round}`);
      writeFileSync(configFile, JSON.stringify({ agentId: 'startup', dataDir, grpc: { socket: join(dataDir, 'berth.sock') }, runtime: env.runtimeConfig }));
      results.fresh.push(await startOnce(configFile));
      results.restart.push(await startOnce(configFile));
      results.node.push(await nodeAlone());
    }
    console.log(`\n${new Date().toISOString().slice(0, 10)}, containerd, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}, ${ROUNDS} rounds, medians\n`);
    console.log('| start | socket listening (ms) | "berth started" (ms) |');
    console.log('|---|---:|---:|');
    for (const kind of ['fresh', 'restart'] as const) {
      console.log(
        `| ${kind === 'fresh' ? 'empty data directory' : 'restart on the same data'} | ${median(results[kind].map((r) => r.listening)).toFixed(0)} | ${median(results[kind].map((r) => r.started)).toFixed(0)} |`,
      );
    }
    console.log(`| \`node -e 0\` (exit) | | ${median(results.node).toFixed(0)} |`);
    console.log('\nlog of the last restart (ms from spawn):');
    for (const mark of results.restart.at(-1)!.marks) console.log(`  ${String(mark.ms).padStart(5)}  ${mark.msg}`);
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
