import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import { LABELS } from '../../src/engine/tasks/labels.js';
import { containersSeenByDaemon } from '../harness/daemon-witness.js';
import { EventCollector, startTestAgent, type TestAgent } from '../harness/agent.js';
import { HealthCheckClient } from '../harness/grpc-clients.js';
import { startRuntimeEnvironment, type RuntimeEnvironment } from '../harness/runtime-environment.js';
import { container, containerOf, is, task, taskId, TaskStatus } from '../harness/task-builders.js';

const SERVE = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1 & wait $!; done'];

/**
 * Unlike dockerd, containerd does not take its containers down with it: their shims keep them
 * running. After a restart berth reconnects, keeps what still runs, and applies what ended while
 * containerd was away.
 */
describe('containerd outages: containerd stopped or killed under running tasks', () => {
  let env: RuntimeEnvironment;
  let agent: TestAgent;
  let health: HealthCheckClient;

  before(async () => {
    env = await startRuntimeEnvironment('outage', 'containerd');
    agent = await startTestAgent(env, { engine: { runtimeCheckInterval: '500ms' } });
    health = new HealthCheckClient(agent.socketPath);
  });
  after(async () => {
    health?.close();
    await agent?.stop();
    await env?.stop();
  });

  const getTask = async (id: string) => (await agent.calls.get(id))!;
  /** Kills a container's processes from the host, as the kernel's OOM killer or an operator would. */
  const killFromHost = (runtimeId: string) => {
    const namespace = (env.runtimeConfig.containerd as { namespace: string }).namespace;
    const pids = readFileSync(`/sys/fs/cgroup/pids/${namespace}/${runtimeId}/cgroup.procs`, 'utf8').split('\n').filter(Boolean);
    assert.ok(pids.length > 0, 'the container has processes');
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // a short-lived child (the loop's sleep) that ended meanwhile
      }
    }
  };

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`${signal}: berth stays up, answers UNAVAILABLE, and after the restart keeps what runs and applies what exited`, async () => {
      const steady = taskId('steady');
      const victim = taskId('victim');
      const creds = { registryCredentials: env.credentials };
      const watch = new EventCollector(agent.client, { includeSnapshot: true });
      try {
        const snapshot = await watch.waitFor('snapshot', (m) => m.kind?.$case === 'snapshot');
        const from = snapshot.kind?.$case === 'snapshot' ? snapshot.kind.value.sequence : 0;
        await agent.calls.run(task(steady, [container('app', env.image, { ...creds, command: SERVE })]));
        await agent.calls.run(task(victim, [container('app', env.image, { ...creds, command: SERVE })]));
        await watch.waitForEvent('steady RUNNING', is.task(steady, TaskStatus.TASK_STATUS_RUNNING));
        await watch.waitForEvent('victim RUNNING', is.task(victim, TaskStatus.TASK_STATUS_RUNNING));
        const steadyId = containerOf(await getTask(steady), 'app').runtimeId;
        const victimId = containerOf(await getTask(victim), 'app').runtimeId;

        await env.halt(signal);
        await health.waitFor('NOT_SERVING');
        await assert.rejects(agent.calls.run(task(taskId('refused'), [container('app', env.image, creds)])), (error: ServiceError) => error.code === status.UNAVAILABLE);
        killFromHost(victimId);
        const eventsWhileDown = watch.events.length;

        await env.resume();
        await health.waitFor('SERVING');
        await watch.waitForEvent('victim STOPPED', is.task(victim, TaskStatus.TASK_STATUS_STOPPED), 60_000);
        assert.ok(watch.events.length > eventsWhileDown);
        const dead = containerOf(await getTask(victim), 'app');
        assert.equal(dead.exitCode, 137);
        assert.match((await getTask(victim)).reason, /essential container "app" exited with code 137/);

        const kept = await getTask(steady);
        assert.equal(kept.knownStatus, TaskStatus.TASK_STATUS_RUNNING);
        assert.equal(containerOf(kept, 'app').runtimeId, steadyId, 'the same container, not a new one');
        // As ctr sees it, not berth's adapter: the steady container runs, and each task has one container.
        const mine = (await containersSeenByDaemon(env, [LABELS.agentId, agent.config.agentId])).filter((c) => [steady, victim].includes(c.labels[LABELS.taskId]!));
        assert.deepEqual(mine.map((c) => c.labels[LABELS.taskId]).sort(), [steady, victim].sort(), 'no duplicate, no orphan');
        assert.deepEqual(
          mine.filter((c) => c.running).map((c) => c.id),
          [steadyId],
          'only the steady container runs',
        );
        watch.events.forEach((e, i) => assert.equal(e.sequence, from + 1 + i));

        await agent.calls.stop(steady, 'done');
        await watch.waitForEvent('steady STOPPED', is.task(steady, TaskStatus.TASK_STATUS_STOPPED));
      } finally {
        watch.close();
      }
    });
  }
});
