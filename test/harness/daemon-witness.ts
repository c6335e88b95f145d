import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { RuntimeEnvironment } from './runtime-environment.js';

const run = promisify(execFile);

/** A container as the daemon's own command-line client reports it. */
export interface WitnessedContainer {
  id: string;
  labels: Record<string, string>;
  running: boolean;
}

/** What the daemon holds beyond its containers: for containerd, snapshots and shim tasks. */
export interface DaemonLeftovers {
  /** Snapshots in the namespace no container refers to. */
  snapshots: string[];
  /** Shim tasks whose container no longer exists. */
  tasks: string[];
}

/**
 * Asks the daemon itself, through `docker` or `ctr`, not through berth's adapters: what a test
 * claims about the runtime after a crash must not rest on the code under test.
 */
export async function containersSeenByDaemon(env: RuntimeEnvironment, label: [string, string]): Promise<WitnessedContainer[]> {
  if (env.kind === 'docker') {
    const host = (env.runtimeConfig.docker as { host: string }).host;
    const ids = (await run('docker', ['-H', host, 'ps', '-aq', '--no-trunc', '--filter', `label=${label[0]}=${label[1]}`])).stdout.split('\n').filter(Boolean);
    if (ids.length === 0) return [];
    const inspected = JSON.parse((await run('docker', ['-H', host, 'inspect', ...ids], { maxBuffer: 64 << 20 })).stdout) as {
      Id: string;
      Config: { Labels: Record<string, string> | null };
      State: { Running: boolean };
    }[];
    return inspected.map((c) => ({ id: c.Id, labels: c.Config.Labels ?? {}, running: c.State.Running }));
  }
  const ctr = ctrArgs(env);
  const ids = (await run('ctr', [...ctr, 'containers', 'ls', '-q', `labels."${label[0]}"==${label[1]}`])).stdout.split('\n').filter(Boolean);
  const running = await runningTasks(env);
  const containers: WitnessedContainer[] = [];
  for (const id of ids) {
    const info = JSON.parse((await run('ctr', [...ctr, 'containers', 'info', id], { maxBuffer: 64 << 20 })).stdout) as { Labels?: Record<string, string> };
    containers.push({ id, labels: info.Labels ?? {}, running: running.has(id) });
  }
  return containers;
}

/** Snapshots and shim tasks that belong to no container (always none on Docker, which owns both). */
export async function leftoversSeenByDaemon(env: RuntimeEnvironment): Promise<DaemonLeftovers> {
  if (env.kind === 'docker') return { snapshots: [], tasks: [] };
  const ctr = ctrArgs(env);
  const containers = new Set((await run('ctr', [...ctr, 'containers', 'ls', '-q'])).stdout.split('\n').filter(Boolean));
  const snapshotLines = (await run('ctr', [...ctr, 'snapshots', 'ls'])).stdout.split('\n').slice(1).filter(Boolean);
  // Committed snapshots are image layers; active ones are containers' writable layers, keyed by container id.
  const active = snapshotLines
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.at(-1) === 'Active')
    .map((cols) => cols[0]!);
  const taskLines = (await run('ctr', [...ctr, 'tasks', 'ls'])).stdout.split('\n').slice(1).filter(Boolean);
  const tasks = taskLines.map((line) => line.trim().split(/\s+/)[0]!);
  return { snapshots: active.filter((key) => !containers.has(key)), tasks: tasks.filter((id) => !containers.has(id)) };
}

function ctrArgs(env: RuntimeEnvironment): string[] {
  const { socket, namespace } = env.runtimeConfig.containerd as { socket: string; namespace: string };
  return ['--address', socket, '--namespace', namespace];
}

async function runningTasks(env: RuntimeEnvironment): Promise<Set<string>> {
  const lines = (await run('ctr', [...ctrArgs(env), 'tasks', 'ls'])).stdout.split('\n').slice(1).filter(Boolean);
  return new Set(
    lines
      .map((line) => line.trim().split(/\s+/))
      .filter((cols) => cols[2] === 'RUNNING')
      .map((cols) => cols[0]!),
  );
}

/** The file the container's output is kept in, as the daemon says: Docker's LogPath, or the log file berth's writer was given on containerd. */
export async function logFileSeenByDaemon(env: RuntimeEnvironment, id: string): Promise<string> {
  if (env.kind === 'docker') {
    const host = (env.runtimeConfig.docker as { host: string }).host;
    return (await run('docker', ['-H', host, 'inspect', '--format', '{{.LogPath}}', id])).stdout.trim();
  }
  const info = JSON.parse((await run('ctr', [...ctrArgs(env), 'containers', 'info', id], { maxBuffer: 64 << 20 })).stdout) as { Labels?: Record<string, string> };
  const file = info.Labels?.['berth.log-file'];
  if (!file) throw new Error(`container ${id} has no berth.log-file label`);
  return file;
}
