import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Event } from '../../src/gen/berth/agent/v1/event.js';
import { HealthStatus } from '../../src/gen/berth/agent/v1/task.js';
import { startTestAgent, watching, type TestAgent } from '../harness/agent.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, containerOf, ContainerStatus, DependencyCondition, dependsOn, is, task, taskId, TaskStatus } from '../harness/task-builders.js';

const ms = (n: number) => ({ seconds: Math.floor(n / 1000), nanos: (n % 1000) * 1e6 });
const healthIs = (id: string, name: string, status: HealthStatus) => (e: Event) =>
  e.taskId === id && e.change?.$case === 'container' && e.change.value.container?.name === name && e.change.value.container.healthStatus === status;
const delayOf = (e: Event) => Number(/restarting in (\d+) ms/.exec(e.change?.$case === 'container' ? (e.change.value.container?.reason ?? '') : '')![1]);
const restartNotice = (id: string) => (e: Event) => e.taskId === id && e.change?.$case === 'container' && /restarting in \d+ ms/.test(e.change.value.container?.reason ?? '');

export function healthScenarios(kind: RuntimeKind): void {
  describe(`health checks and restart policies on a real ${kind}`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    const creds = () => ({ registryCredentials: env.credentials });

    before(async () => {
      env = await startRuntimeEnvironment('health', kind);
      agent = await startTestAgent(env, { engine: { restartBackoff: { initial: '300ms', max: '1200ms', resetAfter: '10m' } } });
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });

    const run = (definition: ReturnType<typeof task>) => agent.calls.run(definition);
    const get = (id: string) => agent.calls.get(id);
    const stop = (id: string) => agent.calls.stop(id);

    it('starts a HEALTHY dependent only after the dependency passes its health check', async () => {
      const id = taskId('healthy');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(
          task(id, [
            container('db', env.image, {
              ...creds(),
              essential: false,
              command: ['sh', '-c', 'sleep 2; echo up > /tmp/ready; exec sleep 300'],
              healthCheck: { command: ['cat', '/tmp/ready'], interval: ms(300), timeout: ms(2000), retries: 50, startPeriod: undefined },
            }),
            container('app', env.image, { ...creds(), command: ['sleep', '300'], dependsOn: [dependsOn('db', DependencyCondition.DEPENDENCY_CONDITION_HEALTHY)] }),
          ]),
        );
        await watch.waitForEvent('task RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING));
        const events = watch.events;
        const healthy = events.findIndex(healthIs(id, 'db', HealthStatus.HEALTH_STATUS_HEALTHY));
        const appRunning = events.findIndex(is.container(id, 'app', ContainerStatus.CONTAINER_STATUS_RUNNING));
        assert.ok(healthy >= 0 && appRunning > healthy, 'app started after db became healthy');
        const db = containerOf(await get(id), 'db');
        assert.equal(db.healthOutput, 'up\n');
        assert.ok(db.healthCheckedAt instanceof Date);
        await stop(id);
      });
    });

    it('reports an unhealthy container as UNHEALTHY with the probe output', async () => {
      const id = taskId('unhealthy');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(
          task(id, [
            container('app', env.image, {
              ...creds(),
              command: ['sleep', '300'],
              healthCheck: { command: ['sh', '-c', 'echo database unreachable; exit 1'], interval: ms(200), timeout: ms(2000), retries: 2, startPeriod: undefined },
            }),
          ]),
        );
        await watch.waitForEvent('UNHEALTHY', healthIs(id, 'app', HealthStatus.HEALTH_STATUS_UNHEALTHY));
        const app = containerOf(await get(id), 'app');
        assert.match(app.healthOutput, /database unreachable/);
        assert.equal((await get(id))?.knownStatus, TaskStatus.TASK_STATUS_RUNNING, 'an unhealthy container is reported, not stopped');
        await stop(id);
      });
    });

    it('stops the task when a HEALTHY dependency misses its start timeout', async () => {
      const id = taskId('timeout');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(
          task(id, [
            container('db', env.image, {
              ...creds(),
              essential: false,
              command: ['sleep', '300'],
              startTimeout: ms(1500),
              stopTimeout: ms(1000),
              healthCheck: { command: ['false'], interval: ms(200), timeout: ms(2000), retries: 100, startPeriod: undefined },
            }),
            container('app', env.image, { ...creds(), command: ['sleep', '300'], dependsOn: [dependsOn('db', DependencyCondition.DEPENDENCY_CONDITION_HEALTHY)] }),
          ]),
        );
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
        const final = await get(id);
        assert.match(final?.reason ?? '', /dependency "db" did not become healthy within its start timeout of 1500 ms/);
        assert.equal(containerOf(final, 'app').runtimeId.length > 0, true);
        assert.equal(containerOf(final, 'app').startedAt, undefined, 'app never started');
      });
    });

    it('restarts a container exiting 1 with growing back-off; StopTask during back-off stops it for good', async () => {
      const id = taskId('restart');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(task(id, [container('flaky', env.image, { ...creds(), command: ['sh', '-c', 'exit 1'], restartPolicy: { enabled: true, ignoredExitCodes: [], restartAttemptPeriod: ms(0) } })]));
        await watch.waitForEvent('third restart', (e) => e.taskId === id && e.change?.$case === 'container' && e.change.value.container?.restartCount === 3, 30_000);
        const delays = watch.events.filter(restartNotice(id)).map(delayOf);
        assert.deepEqual(delays.slice(0, 3), [300, 600, 1200]);
        // Each restart really waited its back-off: the time from an exit's notice to the next start.
        const notices = watch.events.filter(restartNotice(id));
        const restarts = watch.events.filter((e) => e.taskId === id && e.change?.$case === 'container' && (e.change.value.container?.restartCount ?? 0) > 0 && !restartNotice(id)(e));
        for (let n = 1; n <= 3; n++) {
          const notice = notices[n - 1]!;
          const started = restarts.find((e) => e.change?.$case === 'container' && e.change.value.container?.restartCount === n)!;
          const waited = started.time!.getTime() - notice.time!.getTime();
          assert.ok(waited >= delayOf(notice) - 20, `restart ${n} came ${waited} ms after its exit, before its back-off of ${delayOf(notice)} ms`);
        }
        const flaky = containerOf(await get(id), 'flaky');
        assert.equal(flaky.lastExitCode, 1);
        assert.ok(flaky.lastRestartedAt instanceof Date);

        // Stop while it waits out its back-off: it is not started again. (The back-off it was in is
        // the last one announced before the stop, whenever the events reach this client.)
        // A new back-off is a notice after one more restart: an event that repeats the notice while
        // its restart is under way (the runtime's start event can come first) is not one.
        const countOf = (e: Event) => (e.change?.$case === 'container' ? (e.change.value.container?.restartCount ?? 0) : 0);
        const counted = Math.max(...watch.events.filter(restartNotice(id)).map(countOf));
        await watch.waitFor('next back-off', () => watch.events.some((e) => restartNotice(id)(e) && countOf(e) > counted), 30_000);
        await stop(id);
        const stopped = await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
        // The agent took the stop at its desired-STOPPED event: under load that can be after the
        // back-off this client saw announced ran out, so the one to check is the last announced
        // before the agent took the stop.
        const stopTaken = watch.events.find((e) => e.taskId === id && e.change?.$case === 'task' && e.change.value.desiredStatus === TaskStatus.TASK_STATUS_STOPPED)!;
        const waiting = watch.events.filter((e) => restartNotice(id)(e) && e.sequence < stopTaken.sequence).at(-1)!;
        const countThen = Math.max(...watch.events.filter((e) => e.sequence < stopTaken.sequence).map(countOf));
        const final = containerOf(await get(id), 'flaky');
        assert.equal(final.restartCount, countThen, 'no restart after the agent took the stop');
        if (countOf(waiting) === countThen) {
          // It was waiting out that back-off when the stop came: it stopped without waiting it out.
          assert.ok(stopped.time!.getTime() < waiting.time!.getTime() + delayOf(waiting), 'stopped without waiting out the back-off');
        }
        assert.notEqual((await env.runtime.inspectContainer(final.runtimeId)).state, 'running');
      });
    });

    it('does not restart an ignored exit code', async () => {
      const id = taskId('ignored');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(task(id, [container('done', env.image, { ...creds(), command: ['sh', '-c', 'exit 3'], restartPolicy: { enabled: true, ignoredExitCodes: [3], restartAttemptPeriod: ms(0) } })]));
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
        const done = containerOf(await get(id), 'done');
        assert.equal(done.restartCount, 0);
        assert.equal(done.exitCode, 3);
        assert.match(done.reason, /which the restart policy ignores/);
      });
    });
  });
}
