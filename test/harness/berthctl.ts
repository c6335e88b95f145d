import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/berthctl.ts', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Starts berthctl as its own process (as a user runs it), with BERTH_ADDR unset unless given. */
export function spawnBerthctl(args: string[], env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  const { BERTH_ADDR: _unset, ...inherited } = process.env;
  return spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { env: { ...inherited, ...env }, stdio: 'pipe' });
}

/** Runs berthctl to its end: exit code and output. `input` is given on standard input. */
export function berthctl(args: string[], options: { env?: Record<string, string>; input?: string } = {}): Promise<CliResult> {
  const child = spawnBerthctl(args, options.env);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  child.stdin.end(options.input ?? '');
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr }));
  });
}

/** Resolves once the child's stdout holds text matching `pattern` (the output so far), or rejects after `timeoutMs`. */
export function waitForOutput(child: ChildProcessWithoutNullStreams, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => {
      child.stdout.off('data', onData);
      reject(new Error(`no output matching ${pattern} within ${timeoutMs} ms; got:\n${seen}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      if (pattern.test(seen)) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        resolve(seen);
      }
    };
    child.stdout.on('data', onData);
  });
}
