import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isRuntimeError } from '../../src/runtime/errors.js';
import { VolumeScope, type ContainerDefinition, type Volume } from '../../src/gen/berth/agent/v1/task_definition.js';
import { startTestAgent, watching, type TestAgent } from '../harness/agent.js';
import { pushBusyboxImage } from '../harness/busybox-image.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, containerOf, task, taskId, TaskStatus, type TaskStatus as Status } from '../harness/task-builders.js';

const taskVolume = (name: string): Volume => ({ name, host: undefined, dockerVolumeConfiguration: undefined });
const sharedVolume = (name: string, autoprovision: boolean): Volume => ({
  name,
  host: undefined,
  dockerVolumeConfiguration: { scope: VolumeScope.VOLUME_SCOPE_SHARED, autoprovision, driver: '', driverOpts: {}, labels: { purpose: 'test' } },
});
const mount = (sourceVolume: string, containerPath: string, readOnly = false) => ({ sourceVolume, containerPath, readOnly, hostPath: '' });

/**
 * Volumes on a real runtime, each observed from inside the containers: a task volume shared by
 * sidecars and gone after cleanup, a shared volume's data seen by the next task, volumes_from
 * read-only, the image's files copied into an empty volume, the image's own VOLUMEs.
 */
export function volumeScenarios(kind: RuntimeKind): void {
  describe(`volumes on a real ${kind}`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    let declaringImage: string;

    before(async () => {
      env = await startRuntimeEnvironment('volumes', kind);
      // Cleaned up a second after they stop, so that a test sees its task volumes go.
      agent = await startTestAgent(env, { engine: { taskCleanupWait: '1s' } });
      declaringImage = await pushBusyboxImage(env.registry, 'berth-test/declares-volume', '1', { volumes: ['/www'] });
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });

    const sh = (name: string, script: string, overrides: Partial<ContainerDefinition> = {}) =>
      container(name, env.image, { registryCredentials: env.credentials, command: ['sh', '-c', script], ...overrides });
    const run = (id: string, containers: ContainerDefinition[], volumes: Volume[], until: Status = TaskStatus.TASK_STATUS_RUNNING) => agent.calls.runUntil(task(id, containers, { volumes }), until);
    const inside = (id: string, name: string, script: string) => agent.calls.shell(id, name, script);
    /** Stops the task and waits until its cleanup removed it. */
    const stopAndForget = async (id: string) => {
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await agent.calls.stop(id);
        await watch.waitFor('task removed', (m) => m.kind?.$case === 'event' && m.kind.value.taskId === id && m.kind.value.change?.$case === 'removed', 60_000);
      });
    };
    // berth's own volumes on containerd live in the agent's data directory: asked through its runtime.
    const volumesOfAgent = () => agent.agent.parts.runtime;
    const volumesOfTask = async (id: string) => (await volumesOfAgent().listVolumes({ 'berth.task-id': id })).map((v) => v.labels['berth.volume-name']);

    it("shares a task volume between the task's containers, and removes it at cleanup", async () => {
      const id = taskId('shared-files');
      await run(
        id,
        [
          sh('writer', 'echo "from the writer" > /data/message; exec sleep 300', { mountPoints: [mount('scratch', '/data')] }),
          sh('reader', 'exec sleep 300', { mountPoints: [mount('scratch', '/input', true)] }),
        ],
        [taskVolume('scratch')],
      );
      const read = await inside(id, 'reader', 'i=0; while [ ! -s /input/message ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; cat /input/message');
      assert.deepEqual(read, { code: 0, output: 'from the writer' });
      const write = await inside(id, 'reader', 'touch /input/other 2>&1');
      assert.notEqual(write.code, 0, 'the reader mounted it read-only');
      assert.match(write.output, /Read-only file system/);
      assert.deepEqual(await volumesOfTask(id), ['scratch']);
      await stopAndForget(id);
      assert.deepEqual(await volumesOfTask(id), [], 'the task volume went with the task');
    });

    it('keeps a shared volume for the next task, and refuses to run without one that may not be created', async () => {
      const name = `test-shared-${process.pid}-${kind}`;
      const first = taskId('shared-first');
      const second = taskId('shared-second');
      try {
        await run(first, [sh('app', 'echo "left by the first task" > /data/note; exec sleep 300', { mountPoints: [mount(name, '/data')] })], [sharedVolume(name, true)]);
        assert.deepEqual((await inside(first, 'app', 'i=0; while [ ! -s /data/note ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; cat /data/note')).code, 0);
        await stopAndForget(first);
        // The volume outlived the task; the next one, which may not create it, finds it.
        await run(second, [sh('app', 'exec sleep 300', { mountPoints: [mount(name, '/data', true)] })], [sharedVolume(name, false)]);
        assert.deepEqual(await inside(second, 'app', 'cat /data/note'), { code: 0, output: 'left by the first task' });
        await stopAndForget(second);
        assert.equal((await volumesOfAgent().inspectVolume(name)).labels.purpose, 'test');
      } finally {
        await volumesOfAgent().removeVolume(name);
      }
      await assert.rejects(volumesOfAgent().inspectVolume(name), (error: unknown) => isRuntimeError(error, 'not-found'));
      const missing = taskId('shared-missing');
      const stopped = await run(missing, [sh('app', 'exec sleep 300', { mountPoints: [mount(name, '/data')] })], [sharedVolume(name, false)], TaskStatus.TASK_STATUS_STOPPED);
      assert.match(containerOf(stopped, 'app').reason, /shared volume "test-shared-[^"]+" does not exist.*autoprovision is off/);
      await assert.rejects(volumesOfAgent().inspectVolume(name), (error: unknown) => isRuntimeError(error, 'not-found'), 'nothing created it');
    });

    it("mounts another container's volumes with volumes_from, read-only when asked", async () => {
      const id = taskId('volumes-from');
      await run(
        id,
        [
          sh('app', 'echo state > /state/file; exec sleep 300', { mountPoints: [mount('state', '/state')] }),
          sh('backup', 'exec sleep 300', { volumesFrom: [{ sourceContainer: 'app', readOnly: true }] }),
          sh('fixer', 'exec sleep 300', { volumesFrom: [{ sourceContainer: 'backup', readOnly: false }] }),
        ],
        [taskVolume('state')],
      );
      assert.deepEqual(await inside(id, 'backup', 'i=0; while [ ! -s /state/file ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; cat /state/file'), { code: 0, output: 'state' });
      assert.notEqual((await inside(id, 'backup', 'touch /state/x')).code, 0, 'read-only through volumes_from');
      // A chain: fixer takes backup's mounts, which are app's, read-only as backup has them.
      assert.notEqual((await inside(id, 'fixer', 'touch /state/x')).code, 0, 'read-only down the chain');
      assert.equal((await inside(id, 'fixer', 'cat /state/file')).output, 'state');
      await stopAndForget(id);
    });

    it("copies the image's files into an empty volume mounted over them, and gives the image's VOLUMEs volumes of their own", async () => {
      const id = taskId('copy-up');
      await run(
        id,
        [sh('web', 'exec sleep 300', { mountPoints: [mount('site', '/www')] }), container('declared', declaringImage, { registryCredentials: env.credentials, command: ['sleep', '300'] })],
        [taskVolume('site')],
      );
      assert.deepEqual(await inside(id, 'web', 'cat /www/index.html'), { code: 0, output: 'hello from berth' });
      // The image declares VOLUME /www: a volume of its own there, with the image's files in it.
      assert.equal((await inside(id, 'declared', 'grep -c " /www " /proc/mounts')).output, '1');
      assert.deepEqual(await inside(id, 'declared', 'cat /www/index.html && echo more > /www/more && cat /www/more'), { code: 0, output: 'hello from berth\nmore' });
      await stopAndForget(id);
    });
  });
}
