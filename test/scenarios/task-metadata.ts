import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ExecResponse } from '../../src/gen/berth/agent/v1/task_service.js';
import { startTestAgent, watching, type TestAgent } from '../harness/agent.js';
import { freeLoopbackPort } from '../harness/processes.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, is, NetworkMode, task, taskId, TaskStatus } from '../harness/task-builders.js';

/** The task metadata endpoint, read from inside containers with busybox wget, on a real daemon. */
export function taskMetadataScenarios(kind: RuntimeKind): void {
  describe(`the task metadata endpoint on a real ${kind}`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    const creds = () => ({ registryCredentials: env.credentials });

    before(async () => {
      env = await startRuntimeEnvironment('metadata', kind);
      const port = await freeLoopbackPort();
      agent = await startTestAgent(env, { metadata: { address: `0.0.0.0:${port}` }, security: { allowHostNetwork: true } });
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });

    const exec = (id: string, command: string[]) => agent.calls.exec(id, 'app', command);
    const output = (response: ExecResponse) => Buffer.from(response.output).toString('utf8');
    /** GET from inside the task's container: the body, or the error wget reports. */
    const fetchInside = async (id: string, url: string) => {
      const response = await exec(id, ['wget', '-q', '-O', '-', url]);
      return { ok: response.exitCode === 0, body: output(response) };
    };
    const start = async (id: string, networkMode: NetworkMode, labels: Record<string, string> = {}) => {
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await agent.calls.run(task(id, [container('app', env.image, { ...creds(), command: ['sleep', '300'], memoryMib: 32, labels })], { networkMode, family: 'meta' }));
        await watch.waitForEvent('task RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING));
      });
      return output(await exec(id, ['sh', '-c', 'echo "$ECS_CONTAINER_METADATA_URI_V4"'])).trim();
    };
    // Awaited to the end, so that no task's network outlives the agent that made it.
    const stop = (id: string) => agent.calls.stopAndWait(id);

    it("serves a container its own metadata, its task's and their resource use, and refuses it another task's", async () => {
      const a = taskId('meta-a');
      const b = taskId('meta-b');
      const uriA = await start(a, NetworkMode.NETWORK_MODE_TASK, { team: 'blue' });
      const uriB = await start(b, NetworkMode.NETWORK_MODE_TASK);
      assert.match(uriA, /^http:\/\/\d+\.\d+\.\d+\.\d+:\d+\/v4\/[0-9a-f]{40}$/);
      assert.equal(output(await exec(a, ['sh', '-c', 'echo "$BERTH_CONTAINER_METADATA_URI"'])).trim(), uriA);

      const own = await fetchInside(a, uriA);
      assert.ok(own.ok, own.body);
      const meta = JSON.parse(own.body) as Record<string, unknown>;
      assert.equal(meta.Name, 'app');
      assert.equal(meta.KnownStatus, 'RUNNING');
      assert.equal(meta.Image, env.image);
      assert.deepEqual(meta.Labels, { team: 'blue' });
      assert.deepEqual(meta.Limits, { CPU: 0, Memory: 32 });
      assert.match(String(meta.DockerId), /\S/);
      const networks = meta.Networks as { NetworkMode: string; IPv4Addresses: string[] }[];
      assert.equal(networks[0]!.NetworkMode, 'task');
      assert.match(networks[0]!.IPv4Addresses[0]!, /^\d+\.\d+\.\d+\.\d+$/);

      const taskMeta = JSON.parse((await fetchInside(a, `${uriA}/task`)).body) as { TaskARN: string; Family: string; Cluster: string; Containers: { Name: string }[] };
      assert.equal(taskMeta.TaskARN, a);
      assert.equal(taskMeta.Family, 'meta');
      assert.equal(taskMeta.Cluster, agent.config.agentId);
      assert.deepEqual(
        taskMeta.Containers.map((c) => c.Name),
        ['app'],
      );

      const stats = JSON.parse((await fetchInside(a, `${uriA}/stats`)).body) as { memory_stats: { usage: number; limit: number }; pids_stats: { current: number } };
      assert.equal(stats.memory_stats.limit, 32 * 1024 * 1024);
      assert.ok(stats.pids_stats.current >= 1);
      const taskStats = JSON.parse((await fetchInside(a, `${uriA}/task/stats`)).body) as Record<string, unknown>;
      assert.deepEqual(Object.keys(taskStats), [meta.DockerId]);

      // Task B's URI, handed to task A: refused, because the request does not come from task B.
      const other = await fetchInside(a, uriB);
      assert.equal(other.ok, false);
      assert.match(other.body, /403/);
      const madeUp = await fetchInside(a, uriA.replace(/[0-9a-f]{40}$/, '0'.repeat(40)));
      assert.equal(madeUp.ok, false);
      assert.match(madeUp.body, /404/);
      await stop(a);
      await stop(b);
    });

    it('gives containers on the host network a loopback URI, and containers without a network none', async () => {
      const host = taskId('meta-host');
      const uri = await start(host, NetworkMode.NETWORK_MODE_HOST);
      assert.match(uri, /^http:\/\/127\.0\.0\.1:\d+\/v4\//);
      const own = await fetchInside(host, uri);
      assert.ok(own.ok, own.body);
      assert.equal((JSON.parse(own.body) as { Name: string }).Name, 'app');
      const none = taskId('meta-none');
      assert.equal(await start(none, NetworkMode.NETWORK_MODE_NONE), '', 'no way to the host: no URI');
      await stop(host);
      await stop(none);
    });

    it("reaches containers in bridge mode at the bridge's gateway", async () => {
      const id = taskId('meta-bridge');
      const uri = await start(id, NetworkMode.NETWORK_MODE_BRIDGE);
      assert.match(uri, /^http:\/\/\d+\.\d+\.\d+\.\d+:\d+\/v4\//);
      const own = await fetchInside(id, `${uri}/task`);
      assert.ok(own.ok, own.body);
      assert.equal((JSON.parse(own.body) as { TaskARN: string }).TaskARN, id);
      await stop(id);
    });
  });
}
