import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import Docker from 'dockerode';
import { existsSync, watch } from 'node:fs';
import { dirname, join } from 'node:path';
import { DockerRuntime } from '../../src/runtime/docker/docker-runtime.js';
import { isRuntimeError } from '../../src/runtime/errors.js';
import { LABELS } from '../../src/engine/tasks/labels.js';
import { EventCollector, startTestAgent, type TestAgent } from '../harness/agent.js';
import { startRuntimeEnvironment, type RuntimeEnvironment } from '../harness/runtime-environment.js';
import { HealthCheckClient } from '../harness/grpc-clients.js';
import { container, containerOf, is, task, taskId, TaskStatus } from '../harness/task-builders.js';

const SERVE = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1 & wait $!; done'];
const ms = (n: number) => ({ seconds: Math.floor(n / 1000), nanos: (n % 1000) * 1e6 });

/** dockerd takes its containers down with it; containerd does not (see containerd-outage.test.ts). */
describe('runtime outages: dockerd stopped or killed under running tasks', () => {
  let env: RuntimeEnvironment;
  let agent: TestAgent;
  let docker: Docker;
  let health: HealthCheckClient;

  before(async () => {
    env = await startRuntimeEnvironment('outage', 'docker');
    docker = new Docker({ socketPath: env.docker!.socketPath });
    agent = await startTestAgent(env, { engine: { restartBackoff: { initial: '200ms', max: '1s', resetAfter: '10m' }, runtimeCheckInterval: '500ms' } });
    health = new HealthCheckClient(agent.socketPath);
  });
  after(async () => {
    health?.close();
    await agent?.stop();
    await env?.stop();
  });

  const getTask = async (id: string) => (await agent.calls.get(id))!;

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`${signal}: berth stays up, answers UNAVAILABLE, and once dockerd is back acts on the exits it missed`, async () => {
      const restarting = taskId('restarting');
      const plain = taskId('plain');
      const creds = { registryCredentials: env.credentials };
      const watch = new EventCollector(agent.client, { includeSnapshot: true });
      try {
        const snapshot = await watch.waitFor('snapshot', (m) => m.kind?.$case === 'snapshot');
        const from = snapshot.kind?.$case === 'snapshot' ? snapshot.kind.value.sequence : 0;
        await agent.calls.run(task(restarting, [container('app', env.image, { ...creds, command: SERVE, restartPolicy: { enabled: true, ignoredExitCodes: [], restartAttemptPeriod: ms(0) } })]));
        await agent.calls.run(task(plain, [container('app', env.image, { ...creds, command: SERVE })]));
        await watch.waitForEvent('restarting RUNNING', is.task(restarting, TaskStatus.TASK_STATUS_RUNNING));
        await watch.waitForEvent('plain RUNNING', is.task(plain, TaskStatus.TASK_STATUS_RUNNING));
        const idBefore = containerOf(await getTask(restarting), 'app').runtimeId;

        await env.halt(signal);
        await health.waitFor('NOT_SERVING');
        await assert.rejects(agent.calls.run(task(taskId('refused'), [container('app', env.image, creds)])), (error: ServiceError) => error.code === status.UNAVAILABLE);
        // Reads still work while dockerd is down.
        assert.equal((await getTask(restarting)).definition?.id, restarting);

        await env.resume();
        await health.waitFor('SERVING');
        // dockerd stops (or, after a kill, reaps) the containers it had: the engine learns their exits.
        const stopped = await watch.waitForEvent('plain STOPPED', is.task(plain, TaskStatus.TASK_STATUS_STOPPED), 60_000);
        assert.equal(stopped.change?.$case, 'task');
        assert.match((await getTask(plain)).reason, /essential container "app" (exited with code \d+|stopped)/);
        await watch.waitForEvent('restarted', (e) => e.taskId === restarting && e.change?.$case === 'container' && (e.change.value.container?.restartCount ?? 0) >= 1, 60_000);
        const restarted = containerOf(await getTask(restarting), 'app');
        assert.equal((await getTask(restarting)).knownStatus, TaskStatus.TASK_STATUS_RUNNING);
        assert.equal(restarted.runtimeId, idBefore, 'restarted in place, not recreated');
        assert.equal((await docker.getContainer(idBefore).inspect()).State.Running, true);

        // No duplicate, no orphan; the stream went on without a gap.
        const labelled = await docker.listContainers({ all: true, filters: { label: [`${LABELS.agentId}=${agent.config.agentId}`] } });
        const mine = labelled.filter((c) => [restarting, plain].includes(c.Labels[LABELS.taskId]!));
        assert.deepEqual(mine.map((c) => c.Labels[LABELS.taskId]).sort(), [restarting, plain].sort());
        watch.events.forEach((e, i) => assert.equal(e.sequence, from + 1 + i, JSON.stringify(watch.events.map((x) => [x.sequence, x.taskId, x.change?.$case])) + ' from ' + from));

        await agent.calls.stop(restarting, 'done');
        await watch.waitForEvent('restarting STOPPED', is.task(restarting, TaskStatus.TASK_STATUS_STOPPED));
      } catch (error) {
        console.log(
          JSON.stringify(
            watch.events.map((e) => [
              e.sequence,
              e.taskId.slice(0, 5),
              e.change?.$case,
              e.change?.$case === 'container'
                ? [e.change.value.container?.knownStatus, e.change.value.container?.reason, e.change.value.container?.restartCount]
                : e.change?.$case === 'task'
                  ? [e.change.value.knownStatus, e.change.value.reason]
                  : '',
            ]),
          ),
        );
        throw error;
      } finally {
        watch.close();
      }
    });
  }

  it('counts dockerd down from when it closes its socket to shut down, though the connections it had still answer', async () => {
    // A container that ignores SIGTERM holds dockerd in its shutdown until it is killed.
    const holder = await docker.createContainer({ Image: env.image, Cmd: ['sh', '-c', 'trap "" TERM; while true; do sleep 1; done'], StopTimeout: 60 });
    await holder.start();
    const runtime = new DockerRuntime({ host: env.docker!.host, callTimeoutMs: 10_000, pullTimeoutMs: 10_000, stateDir: join(env.dir, 'outage-probe') });
    await runtime.ping();
    // A connection of the runtime's, kept alive for its next calls.
    await runtime.listContainers({});
    const socketGone = socketRemoved(env.docker!.socketPath);
    const halted = env.halt('SIGTERM');
    try {
      await socketGone;
      await assert.rejects(runtime.ping(), (error) => isRuntimeError(error, 'unavailable'));
      assert.ok(
        (await runtime.listContainers({})).some((c) => c.id === holder.id),
        'dockerd still answers on the connection it had',
      );
    } finally {
      process.kill((await holder.inspect()).State.Pid, 'SIGKILL');
      await halted;
      await env.resume();
    }
    await health.waitFor('SERVING');
  });
});

/** Resolves once the socket at `path` is removed (it must exist when this is called); fails after 60 s. */
function socketRemoved(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      watcher.close();
      reject(new Error(`${path} was not removed within 60 s`));
    }, 60_000);
    const watcher = watch(dirname(path), () => {
      if (existsSync(path)) return;
      clearTimeout(timer);
      watcher.close();
      resolve();
    });
  });
}
