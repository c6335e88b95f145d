import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/berthctl.ts', import.meta.url));
/** The `berthctl` bin of the package, once built (`npm run build`, see test/harness/build.ts). */
const BUILT_CLI = fileURLToPath(new URL('../../dist/berthctl.mjs', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Everything each spawned berthctl wrote to stdout so far, and who waits for more. */
const outputs = new WeakMap<ChildProcessWithoutNullStreams, { text: string; changed: Set<() => void> }>();

/** Collects the child's stdout from now on, for `waitForOutput` (and `berthctl`'s result). */
function collectOutput(child: ChildProcessWithoutNullStreams): ChildProcessWithoutNullStreams {
  const output = { text: '', changed: new Set<() => void>() };
  outputs.set(child, output);
  child.stdout.on('data', (chunk: Buffer) => {
    output.text += chunk.toString('utf8');
    for (const notify of output.changed) notify();
  });
  return child;
}

/**
 * Starts berthctl as its own process (as a user runs it), with BERTH_ADDR unset unless given: the
 * sources through tsx, or the package's built bin when `built`. Its stdout is collected from the
 * start, for `waitForOutput`.
 */
export function spawnBerthctl(args: string[], env: Record<string, string> = {}, built = false): ChildProcessWithoutNullStreams {
  const { BERTH_ADDR: _unset, ...inherited } = process.env;
  const entry = built ? [BUILT_CLI] : ['--import', 'tsx', CLI];
  const child = spawn(process.execPath, [...entry, ...args], { env: { ...inherited, ...env }, stdio: 'pipe' });
  return collectOutput(child);
}

/**
 * Starts berthctl on a terminal of its own (util-linux `script` gives it a pseudo-terminal), as a
 * user at a terminal runs it; its output (what the terminal shows) is collected for `waitForOutput`.
 */
export function spawnBerthctlOnTerminal(args: string[], columns = 120): ChildProcessWithoutNullStreams {
  const { BERTH_ADDR: _unset, ...inherited } = process.env;
  const command = [process.execPath, '--import', 'tsx', CLI, ...args].map((word) => `'${word.replace(/'/g, "'\\''")}'`).join(' ');
  // The terminal's width is set inside it, before berthctl starts.
  const child = spawn('script', ['-q', '-f', '-e', '-c', `stty cols ${columns} rows 50; exec ${command}`, '/dev/null'], { env: { ...inherited, TERM: 'xterm' }, stdio: 'pipe' });
  return collectOutput(child);
}

/** Runs berthctl to its end: exit code and output. `input` is given on standard input. */
export function berthctl(args: string[], options: { env?: Record<string, string>; input?: string; built?: boolean } = {}): Promise<CliResult> {
  const child = spawnBerthctl(args, options.env, options.built);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  child.stdin.end(options.input ?? '');
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), stdout: outputs.get(child)!.text, stderr }));
  });
}

/**
 * Resolves once all that a spawned berthctl wrote to stdout so far matches `pattern`, or rejects
 * after `timeoutMs`.
 */
export function waitForOutput(child: ChildProcessWithoutNullStreams, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  const output = outputs.get(child)!;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!pattern.test(output.text)) return;
      clearTimeout(timer);
      output.changed.delete(check);
      resolve(output.text);
    };
    const timer = setTimeout(() => {
      output.changed.delete(check);
      reject(new Error(`no output matching ${pattern} within ${timeoutMs} ms; got:\n${output.text}`));
    }, timeoutMs);
    output.changed.add(check);
    check();
  });
}

/**
 * Resolves to a spawned berthctl's exit code once it has ended, or rejects after `timeoutMs` with
 * what it wrote so far (a session that did not end, instead of a test that hangs).
 */
export function waitForExit(child: ChildProcessWithoutNullStreams, timeoutMs = 30_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`berthctl did not end within ${timeoutMs} ms; its output:\n${outputs.get(child)?.text ?? ''}`)), timeoutMs);
    child.once('close', (code: number | null) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}
