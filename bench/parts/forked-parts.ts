/**
 * What the benchmarks share to run their parts in processes of their own: forking a part and
 * awaiting its answers, the control plane, and readings of a process (CPU time, memory) and of the
 * agent's metrics.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { AgentProcess } from '../../test/harness/agent-process.js';
import type { ControlPlaneAnswer, ControlPlaneRequest } from './control-plane.js';

/** A free TCP port on loopback (for the agent's metrics endpoint). */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  server.close();
  return port;
}

/** The p-th percentile of sorted values. */
export const percentile = (sorted: number[], p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);
/** Milliseconds for a table. */
export const ms = (value: number) => (Number.isNaN(value) ? '-' : value < 10 ? value.toFixed(1) : value.toFixed(0));

/** The next message from a forked part that satisfies `accept`. */
export function nextMessage<T>(child: ChildProcess, accept: (message: T) => boolean, what: string, timeoutMs = 600_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`${what}: no answer in ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (message: T) => {
      if ((message as { type: string }).type === 'failed') finish(new Error(`${what}: ${(message as { error: string }).error}`));
      else if (accept(message)) finish(undefined, message);
    };
    const onExit = () => finish(new Error(`${what}: the process exited`));
    const finish = (error?: Error, message?: T) => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(message!);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Forks one of the benchmarks' parts (a file in this directory, compiled) with an IPC channel. */
export function forkPart(file: string, args: string[]): ChildProcess {
  return fork(join(import.meta.dirname, file), args, { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

/** CPU time (user + system) of a process so far, in ms. */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** The control plane part (control-plane.ts) in its process, driven by requests. */
export class ControlPlane {
  private constructor(private readonly child: ChildProcess) {}

  static async start(agent: AgentProcess, image: string, credentials: { username: string; password: string }): Promise<ControlPlane> {
    const child = forkPart('control-plane.js', [agent.socketPath, image, credentials.username, credentials.password]);
    await nextMessage(child, (m: ControlPlaneAnswer) => m.type === 'ready', 'control plane', 60_000);
    return new ControlPlane(child);
  }

  async do(request: ControlPlaneRequest): Promise<{ ms: number; count: number }> {
    const answer = nextMessage<ControlPlaneAnswer>(this.child, (m) => m.type === 'done', `control plane ${request.type}`);
    this.child.send(request);
    return (await answer) as { ms: number; count: number };
  }

  stop(): void {
    this.child.send({ type: 'exit' });
  }
}

/** Resident memory of a process, in MiB. */
export function rssMib(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(line?.split(/\s+/)[1] ?? NaN) / 1024;
}

/**
 * The process's RSS (MiB) once it has settled: sampled every second until no new low for
 * `quietSeconds` (at most `maxSeconds`), the lowest seen. V8 gives memory back only after a while
 * without much allocation (its memory reducer ran 10–20 s after the agent's start here), so RSS read just
 * after a burst of work shows the heap as the work left it, not what the process holds idle.
 */
export async function settledRssMib(pid: number, quietSeconds = 30, maxSeconds = 90): Promise<number> {
  let lowest = rssMib(pid);
  let quiet = 0;
  for (let second = 0; second < maxSeconds && quiet < quietSeconds; second++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const now = rssMib(pid);
    if (now < lowest - 0.5) {
      lowest = now;
      quiet = 0;
    } else quiet++;
  }
  return Math.min(lowest, rssMib(pid));
}

/** One sample of the agent's metrics (the first line of `name` whose labels contain `labels`). */
export async function metricSample(metricsAddress: string, name: string, labels = ''): Promise<number | undefined> {
  const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest.startsWith(' ') && labels === '') return Number(rest.trim());
    if (rest.startsWith('{') && rest.includes(labels)) return Number(rest.slice(rest.indexOf('}') + 1).trim());
  }
  return undefined;
}
