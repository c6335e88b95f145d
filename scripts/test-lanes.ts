/**
 * `npm test`: the unit and integration tests in two lanes side by side, one file at a time in
 * each. The Docker lane has the files that start a dockerd, and the unit tests (which start no
 * daemon: they even the lanes out, the other lane being the longer); the other lane has the files
 * that start a containerd or no daemon at all. Each file starts its own daemons, registry
 * and networks, so the lanes share nothing but the machine (and the agents' dynamic host ports are
 * kept apart by runtime: see testPortRange in test/harness/agent.ts). The package is built first
 * (`npm run build`, which the berthctl tests' bins need), once: a build while a lane runs would
 * rewrite src/gen and dist/ under it. Every line of a lane's output is prefixed with the lane's
 * name; the run fails when either lane does.
 *
 *   tsx scripts/test-lanes.ts [--lanes 1] [FILE...]   (FILE...: only these, in their lanes; --lanes 1: one lane)
 */
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

interface Lane {
  name: string;
  files: string[];
}

/**
 * Files that start a dockerd: their names say so, or they use the Docker daemon harness or a
 * Docker runtime environment. Only one of them runs at a time (the daemons' bridges take their
 * subnets from the test process's pid).
 */
const isDockerFile = (file: string) => /docker/.test(basename(file)) || /harness\/docker-daemon\.js|'docker'\)/.test(readFileSync(file, 'utf8'));

/** The unit tests: no daemon, a minute or two in all, run in the Docker lane, which is the shorter. */
const isUnitFile = (file: string) => basename(dirname(file)) === 'unit';

function testFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.test.ts'))
    .sort()
    .map((name) => join(dir, name));
}

function lanes(files: string[], count: number): Lane[] {
  if (count <= 1) return [{ name: 'tests', files }];
  return [
    { name: 'docker', files: files.filter((f) => isDockerFile(f) || isUnitFile(f)) },
    { name: 'other', files: files.filter((f) => !isDockerFile(f) && !isUnitFile(f)) },
  ].filter((lane) => lane.files.length > 0);
}

interface LaneResult {
  name: string;
  code: number | null;
  pass: number;
  fail: number;
  seconds: number;
  /** Each failed test or suite: its name and the first lines of what the runner said of it. */
  failures: string[];
}

/**
 * The longest one test file may run: the runner then fails it ("test timed out") and goes on with
 * the next, so a file that waits for something that never comes costs its lane this much, not the
 * whole run. The longest files take 2–4 minutes on this kind of machine.
 */
const FILE_TIMEOUT_MS = 15 * 60_000;

/** Lines of a failure's YAML block kept for the summary. */
const FAILURE_LINES = 12;

function runLane(lane: Lane): { done: Promise<LaneResult>; kill: (signal: NodeJS.Signals) => void } {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', `--test-timeout=${FILE_TIMEOUT_MS}`, '--test-reporter=tap', ...lane.files], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, BERTH_TEST_PACKAGE_BUILT: '1' },
  });
  let pass = 0;
  let fail = 0;
  const failures: string[] = [];
  // The YAML block after a "not ok" line says why; its first lines go into the summary.
  let failure: { lines: string[]; indent: number } | undefined;
  const prefix = `[${lane.name}] `;
  for (const [stream, out] of [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ] as const) {
    createInterface({ input: stream }).on('line', (line) => {
      // The runner's own totals come last, unindented.
      const notOk = /^(\s*)not ok \d+ - (.*)$/.exec(line);
      if (notOk) {
        failure = { lines: [notOk[2]!], indent: notOk[1]!.length };
        failures.push('');
      } else if (failure) {
        if (line.trim() === '...' || failure.lines.length > FAILURE_LINES) failure = undefined;
        else if (line.trim() !== '---' && !/^\s*(duration_ms|type|location):/.test(line)) failure.lines.push(line.slice(failure.indent));
        if (failure) failures[failures.length - 1] = failure.lines.join('\n');
      }
      // A file that ran out of time counts as cancelled, not failed: both are failures here.
      const total = /^# (pass|fail|cancelled) (\d+)$/.exec(line);
      if (total?.[1] === 'pass') pass = Number(total[2]);
      if (total?.[1] === 'fail' || total?.[1] === 'cancelled') fail += Number(total[2]);
      out.write(`${prefix}${line}\n`);
    });
  }
  const done = new Promise<LaneResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ name: lane.name, code, pass, fail, seconds: Math.round((Date.now() - started) / 1000), failures }));
  });
  return { done, kill: (signal) => child.kill(signal) };
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  let laneCount = 2;
  const laneFlag = args.indexOf('--lanes');
  if (laneFlag >= 0) {
    laneCount = Number(args[laneFlag + 1]);
    args.splice(laneFlag, 2);
  }
  const files = args.length > 0 ? args : [...testFiles('test/unit'), ...testFiles('test/integration')];
  console.log('# npm run build (once, before the lanes)');
  execFileSync('npm', ['run', 'build'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const running = lanes(files, laneCount).map(runLane);
  const forward = (signal: NodeJS.Signals) => running.forEach((lane) => lane.kill(signal));
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const results = await Promise.all(running.map((lane) => lane.done));
  // What failed, again at the end, where a reader of a long log's tail sees it.
  for (const r of results) for (const f of r.failures) console.log(`# [${r.name}] not ok - ${f.replaceAll('\n', '\n#   ')}`);
  for (const r of results) console.log(`# lane ${r.name}: pass ${r.pass}, fail ${r.fail}, ${r.seconds} s, exit ${r.code}`);
  const failed = results.some((r) => r.code !== 0);
  console.log(`# total: pass ${results.reduce((n, r) => n + r.pass, 0)}, fail ${results.reduce((n, r) => n + r.fail, 0)}${failed ? ' — FAILED' : ''}`);
  return failed ? 1 : 0;
}

process.exitCode = await main();
