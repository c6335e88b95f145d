import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';

/** A daemon started by the tests; `stop` ends it and waits for it to exit. */
export interface DaemonProcess {
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/** Fails loudly when a binary the tests need is not installed; tests never skip for that. */
export function requireBinary(path: string, debianPackage: string): string {
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: install the Debian package "${debianPackage}" (see .ci/run)`);
  }
  return path;
}

export function startDaemon(command: string, args: string[], logFile: string, options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): DaemonProcess {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killTimer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(killTimer);
      }
      log.end();
    },
  };
}

/** Ends a daemon with `signal` (SIGKILL: no chance to clean up) and waits until it has exited. */
export async function haltDaemon(daemon: DaemonProcess, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  const exited = new Promise<void>((resolve) => {
    if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) resolve();
    else daemon.child.once('exit', () => resolve());
  });
  daemon.child.kill(signal);
  await exited;
  await daemon.stop();
}

/**
 * Polls `check` until it returns a value, at most `timeoutMs`. Only for readiness of processes that
 * offer no notification (a daemon's socket appearing); never as a stand-in for an awaited event.
 */
export async function waitUntil<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, process?: DaemonProcess): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (process && process.child.exitCode !== null) throw new Error(`${what}: the process exited with code ${process.child.exitCode}`);
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what}: not ready within ${timeoutMs} ms${lastError ? ` (${String(lastError)})` : ''}`);
}

/**
 * The body of `url` once something serves it. A task counts as RUNNING when its process started,
 * which is before the server in it listens, so a first connection may be refused or reset.
 */
export async function textOnceServed(url: string, timeoutMs = 15_000): Promise<string> {
  return waitUntil(`${url} answers`, timeoutMs, async () => {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return response.ok ? response.text() : undefined;
  });
}

export async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** The mount points under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((path) => path.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/**
 * Lazily unmounts what a killed daemon left mounted under `dir` (network namespaces, overlays).
 * The mounts are read again after each pass until none is left under `dir` (at most 5 passes): a
 * mount that came while a pass ran, or a line a read of /proc/self/mounts missed while other
 * suites mounted and unmounted beside it, is then unmounted too.
 */
export function unmountUnder(dir: string): void {
  for (let pass = 0; pass < 5; pass++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) return;
    for (const path of mounts) {
      try {
        execFileSync('umount', ['-l', path], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  }
}

/** Deletes a test's directory, unmounting first whatever is still mounted under it. */
export function removeTree(dir: string): void {
  for (let attempt = 1; ; attempt++) {
    unmountUnder(dir);
    try {
      rmSync(dir, { recursive: true, force: true });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EBUSY' || attempt === 3) {
        throw new Error(`cannot delete ${dir}: ${String(error)}; still mounted under it: ${mountsUnder(dir).join(', ') || 'nothing'}`);
      }
    }
  }
}
