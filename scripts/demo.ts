/**
 * `npm run demo`: starts berth, runs a two-container task with a dependency, prints its events
 * live, stops it and tidies up.
 *
 * It uses the Docker daemon you already run when it answers (DOCKER_HOST or
 * /var/run/docker.sock); otherwise it starts a private one, as the tests do. The image is built
 * here from the host's static busybox and served by a local registry with a password, so nothing
 * is fetched from the internet.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { Event } from '../src/gen/berth/agent/v1/event.js';
import { ContainerStatus, TaskStatus } from '../src/gen/berth/agent/v1/task.js';
import { DependencyCondition, NetworkMode } from '../src/gen/berth/agent/v1/task_definition.js';
import { AGENT_NODE_OPTIONS } from '../src/agent-node-options.js';
import { connect } from '../src/client/berth-client.js';
import { pushBusyboxImage } from '../test/harness/busybox-image.js';
import { startDockerDaemon, type TestDockerDaemon } from '../test/harness/docker-daemon.js';
import { HealthCheckClient } from '../test/harness/grpc-clients.js';
import { startRegistry } from '../test/harness/registry.js';
import { BASE_PACKAGES, DOCKER_PACKAGES, ensurePackages } from './system-packages.js';

const say = (text: string) => console.log(process.stdout.isTTY ? `\x1b[1m» ${text}\x1b[0m` : `» ${text}`);

async function userDocker(): Promise<string | undefined> {
  const host = process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';
  if (!host.startsWith('unix://')) return undefined;
  const socketPath = host.slice('unix://'.length);
  if (!existsSync(socketPath)) return undefined;
  try {
    await new Docker({ socketPath }).ping();
    return host;
  } catch {
    return undefined;
  }
}

function describe(event: Event): string {
  const head = `#${String(event.sequence).padStart(3)} ${event.time?.toISOString().slice(11, 23)} ${event.taskId}`;
  const change = event.change;
  switch (change?.$case) {
    case 'task': {
      const reason = change.value.reason ? `  (${change.value.reason})` : '';
      return `${head}  task       ${TaskStatus[change.value.knownStatus].replace('TASK_STATUS_', '')} → desired ${TaskStatus[change.value.desiredStatus].replace('TASK_STATUS_', '')}${reason}`;
    }
    case 'container': {
      const c = change.value.container!;
      const extra = [c.runtimeId && `id ${c.runtimeId.slice(0, 12)}`, c.exitCode !== undefined && `exit ${c.exitCode}`, c.reason].filter(Boolean).join(', ');
      const desired = c.desiredStatus !== c.knownStatus ? ` → desired ${ContainerStatus[c.desiredStatus].replace('CONTAINER_STATUS_', '')}` : '';
      return `${head}  ${c.name.padEnd(10)} ${ContainerStatus[c.knownStatus].replace('CONTAINER_STATUS_', '')}${desired}${extra ? `  (${extra})` : ''}`;
    }
    case 'pull': {
      const { containerName, image, bytesDone, bytesTotal } = change.value;
      const percent = bytesTotal > 0 ? ` ${Math.floor((100 * bytesDone) / bytesTotal)}%` : '';
      return `${head}  ${containerName.padEnd(10)} pulling ${image}: ${bytesDone} of ${bytesTotal} bytes${percent}`;
    }
    case 'network':
      return `${head}  network    ${change.value.network ? `set up: ${change.value.network.ipAddresses.join(', ')}` : 'torn down'}`;
    case 'orphanRemoved':
      return `${head}  orphan     ${change.value.runtimeName} removed (no task owned it)`;
    case 'removed':
      return `${head}  task removed`;
    default:
      return `${head}  (an event this demo does not know)`;
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-demo-'));
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  const tidy = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  };
  try {
    let dockerHost = await userDocker();
    ensurePackages(dockerHost ? BASE_PACKAGES : [...BASE_PACKAGES, ...DOCKER_PACKAGES], say);
    say('starting a local registry on 127.0.0.1 with a password');
    const registry = await startRegistry(join(dir, 'registry'));
    cleanups.push(() => registry.stop());
    if (dockerHost) {
      say(`using your Docker daemon at ${dockerHost}`);
    } else {
      if (process.getuid?.() !== 0) throw new Error('no Docker daemon answers, and starting a private one needs root');
      say('no Docker daemon answers: starting a private one');
      const docker: TestDockerDaemon = await startDockerDaemon(join(dir, 'docker'));
      cleanups.push(() => docker.stop());
      dockerHost = docker.host;
    }
    say('building a busybox image from /bin/busybox and pushing it to the registry');
    const image = await pushBusyboxImage(registry, 'berth-demo/busybox', '1');

    const socket = join(dir, 'berth.sock');
    say(`starting berth on ${socket}`);
    const agent = spawn(process.execPath, [...AGENT_NODE_OPTIONS, '--import', 'tsx', join(import.meta.dirname, '..', 'src', 'main.ts')], {
      env: { ...process.env, DOCKER_HOST: dockerHost, BERTH_SOCKET: socket, BERTH_AGENT_ID: 'demo', BERTH_LOG_LEVEL: 'warn', BERTH_TASK_CLEANUP_WAIT: '2s', BERTH_DATA_DIR: dir },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const agentExited = new Promise<void>((resolve) => agent.once('exit', () => resolve()));
    cleanups.push(async () => {
      agent.kill('SIGTERM');
      await agentExited;
    });
    const deadline = Date.now() + 30_000;
    while (!existsSync(socket)) {
      if (agent.exitCode !== null) throw new Error('berth exited during start-up');
      if (Date.now() > deadline) throw new Error('berth did not open its socket within 30 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const health = new HealthCheckClient(socket);
    await health.waitFor('SERVING');
    health.close();
    say('berth is SERVING');

    const client = connect({ address: socket });
    const taskId = `demo-${Date.now().toString(36)}`;
    // The task's events as they come, each once (the watch would carry on across agent restarts).
    const watching = new AbortController();
    let removed!: () => void;
    const cleanedUp = new Promise<void>((resolve) => (removed = resolve));
    const printer = (async () => {
      for await (const item of client.watch({ taskIds: [taskId], signal: watching.signal })) {
        if (item.kind !== 'event') continue;
        console.log(describe(item.event));
        if (item.event.change?.$case === 'removed') removed();
      }
    })();

    say(`running task ${taskId}: "setup" must succeed before "app" starts`);
    const base = { stopTimeout: { seconds: 5, nanos: 0 }, registryCredentials: { username: registry.username, password: registry.password } };
    await client.runAndWait(
      {
        id: taskId,
        family: 'demo',
        revision: 1,
        networkMode: NetworkMode.NETWORK_MODE_NONE,
        containers: [
          { ...base, name: 'setup', image, command: ['sh', '-c', 'echo preparing; sleep 1'], essential: false },
          {
            ...base,
            name: 'app',
            image,
            command: ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'],
            essential: true,
            dependsOn: [{ containerName: 'setup', condition: DependencyCondition.DEPENDENCY_CONDITION_SUCCESS }],
          },
        ],
      },
      { timeoutMs: 60_000 },
    );
    say('the task is RUNNING; stopping it');
    await client.stopAndWait(taskId, 'demo finished', { timeoutMs: 60_000 });
    say('the task is STOPPED; berth removes its containers after the cleanup wait (2 s here)');
    await Promise.race([cleanedUp, new Promise((_, reject) => setTimeout(() => reject(new Error('timed out waiting for the cleanup')), 60_000).unref())]);
    watching.abort();
    await printer;
    client.close();
    say('done: tidying up');
  } finally {
    await tidy();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
