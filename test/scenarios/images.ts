import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTestAgent, watching, type TestAgent } from '../harness/agent.js';
import { pushBusyboxImage } from '../harness/busybox-image.js';
import { watchRegistryPulls } from '../harness/registry.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, is, task, taskId, TaskStatus } from '../harness/task-builders.js';

export function imageScenarios(kind: RuntimeKind): void {
  describe(`images on a real ${kind}`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    const refs: Record<string, string> = {};
    const creds = () => ({ registryCredentials: env.credentials });

    before(async () => {
      env = await startRuntimeEnvironment('images', kind);
      for (const name of ['shared', 'baseline', 'running', 'free', 'excluded', 'foreign']) {
        refs[name] = await pushBusyboxImage(env.registry, `berth-test/${name}`, '1', { uniqueLayer: name === 'shared' });
      }
      agent = await startTestAgent(env, {
        engine: { taskCleanupWait: '500ms' },
        images: { cleanup: { enabled: false, interval: '1h', minimumAge: '0s', perCycle: 10, exclude: [refs.excluded] }, progressInterval: '0s' },
      });
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });

    const run = (definition: ReturnType<typeof task>) => agent.calls.run(definition);
    const pullDirectly = (reference: string) => env.runtime.pullImage(reference, { auth: env.credentials });

    it('pulls an image once for ten tasks that need it at the same time, and reports progress', async () => {
      const registryPulls = watchRegistryPulls(env.registry);
      await pullDirectly(refs.baseline!);
      const ids = Array.from({ length: 10 }, () => taskId('shared'));
      await watching(agent.client, { taskIds: ids }, async (watch) => {
        await Promise.all(ids.map((id) => run(task(id, [container('app', refs.shared!, { ...creds(), command: ['sleep', '300'] })]))));
        await Promise.all(ids.map((id) => watch.waitForEvent(`${id} RUNNING`, is.task(id, TaskStatus.TASK_STATUS_RUNNING), 60_000)));
        assert.deepEqual(registryPulls.pulls(), [refs.baseline, refs.shared], 'the registry saw one pull of the shared image for ten tasks');
        // Every task that joined the one pull reports its progress, only forward, up to the whole image.
        for (const id of ids) {
          const progress = watch.events.flatMap((e) => (e.taskId === id && e.change?.$case === 'pull' ? [e.change.value] : []));
          assert.ok(progress.length > 0, `pull progress events of ${id}`);
          assert.ok(
            progress.every((p, i) => i === 0 || p.bytesDone >= progress[i - 1]!.bytesDone),
            `progress of ${id} only moves forward`,
          );
          const last = progress.at(-1)!;
          assert.ok(last.bytesTotal > 0 && last.bytesDone === last.bytesTotal, `${id}: ${JSON.stringify(progress.slice(-3))}`);
        }
        await Promise.all(ids.map((id) => agent.calls.stop(id, '')));
      });
    });

    it('follows the pull behaviour: default and always refuse what the registry refuses, prefer-cached and once skip pulls', async () => {
      const cached = refs.running!;
      await pullDirectly(cached);
      const wrong = { registryCredentials: { username: env.credentials.username, password: 'wrong' } };
      const agents: Record<string, TestAgent> = {};
      for (const behavior of ['always', 'prefer-cached', 'once'] as const) {
        agents[behavior] = await startTestAgent(env, { images: { pullBehavior: behavior, cleanup: { enabled: false, interval: '1h', minimumAge: '1h', perCycle: 1, exclude: [] } } });
      }
      const registryPulls = watchRegistryPulls(env.registry);
      try {
        const outcome = async (which: TestAgent, credentials: object) => {
          const id = taskId('behavior');
          return watching(which.client, { taskIds: [id] }, async (watch) => {
            await which.calls.run(task(id, [container('app', cached, { ...credentials, command: ['sh', '-c', 'exit 0'] })]));
            await watch.waitForEvent('STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
            const stopped = watch.events.find(is.container(id, 'app', 2 /* PULLED */));
            return { pulled: stopped !== undefined, reason: watch.events.flatMap((e) => (e.change?.$case === 'container' ? [e.change.value.container?.reason ?? ''] : [])).pop() ?? '' };
          });
        };
        // The registry refused these credentials: the image another pull left is not this task's.
        const byDefault = await outcome(agent, wrong);
        assert.equal(byDefault.pulled, false, 'default: the cached image is not used');
        assert.match(byDefault.reason, /refused the credentials/);
        const always = await outcome(agents.always!, wrong);
        assert.equal(always.pulled, false);
        assert.match(always.reason, /refused the credentials/);
        const pullsBefore = registryPulls.pulls().length;
        assert.equal((await outcome(agents['prefer-cached']!, wrong)).pulled, true, 'prefer-cached uses the image without asking the registry');
        assert.equal(registryPulls.pulls().length, pullsBefore, 'no pull for prefer-cached');
        await outcome(agents.once!, creds());
        await outcome(agents.once!, creds());
        assert.equal(registryPulls.pulls().length, pullsBefore + 1, 'once: one pull for two tasks');
      } finally {
        for (const a of Object.values(agents)) await a.stop();
      }
    });

    it('abandons a pull that makes no progress (a registry that never answers) after the inactivity timeout', async () => {
      // A "registry" on loopback that accepts connections and never says anything.
      const sockets: Socket[] = [];
      const silent = createServer((socket) => sockets.push(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const port = (silent.address() as AddressInfo).port;
      const impatient = await startTestAgent(env, { images: { pullInactivityTimeout: '1500ms', cleanup: { enabled: false, interval: '1h', minimumAge: '1h', perCycle: 1, exclude: [] } } });
      try {
        const id = taskId('stalled');
        await watching(impatient.client, { taskIds: [id] }, async (watch) => {
          await impatient.calls.run(task(id, [container('app', `127.0.0.1:${port}/stalled/app:1`, creds())]));
          await watch.waitForEvent('STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED), 60_000);
          const reason = watch.events.flatMap((e) => (e.change?.$case === 'container' ? [e.change.value.container?.reason ?? ''] : [])).pop();
          assert.match(reason ?? '', /no progress for 1500 ms/);
        });
      } finally {
        await impatient.stop();
        sockets.forEach((s) => s.destroy());
        silent.close();
      }
    });

    it('cleans up only unused images that berth pulled and that are not excluded', async () => {
      const runningId = taskId('img-running');
      const done = [taskId('img-free'), taskId('img-excluded')];
      await pullDirectly(refs.foreign!);
      await watching(agent.client, { taskIds: [runningId, ...done] }, async (watch) => {
        await run(task(runningId, [container('app', refs.running!, { ...creds(), command: ['sleep', '300'] })]));
        await run(task(done[0]!, [container('app', refs.free!, { ...creds(), command: ['true'] })]));
        await run(task(done[1]!, [container('app', refs.excluded!, { ...creds(), command: ['true'] })]));
        await watch.waitForEvent('running', is.task(runningId, TaskStatus.TASK_STATUS_RUNNING));
        // The finished tasks' containers are removed after the cleanup wait; then their images are unused.
        for (const id of done) await watch.waitForEvent(`${id} removed`, (e) => e.taskId === id && e.change?.$case === 'removed');
        const images = agent.agent.parts.images;
        const removed = await images.cleanupOnce();
        assert.ok(removed.includes(refs.free!), JSON.stringify(removed));
        for (const kept of [refs.running!, refs.excluded!, refs.foreign!]) assert.ok(!removed.includes(kept), `${kept} must be kept`);
        const present = async (ref: string) =>
          env.runtime.inspectImage(ref).then(
            () => true,
            () => false,
          );
        assert.equal(await present(refs.free!), false);
        assert.equal(await present(refs.running!), true);
        assert.equal(await present(refs.excluded!), true);
        assert.equal(await present(refs.foreign!), true);
        await agent.calls.stop(runningId, '');
      });
    });
  });
}
