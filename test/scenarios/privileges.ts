import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestAgent, watching, type TestAgent } from '../harness/agent.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, containerOf, is, task, taskId, TaskStatus } from '../harness/task-builders.js';

/** Exits 0 when the process has CAP_SYS_ADMIN (bit 21) and CAP_NET_ADMIN (bit 12), which plain containers lack. */
const HAS_ADMIN_CAPABILITIES = 'while read key value; do [ "$key" = CapEff: ] && [ $(( (0x$value >> 21) & (0x$value >> 12) & 1 )) -eq 1 ] && exit 0; done < /proc/self/status; exit 1';

/** Privileged containers and host-path mounts, where the config allows them. */
export function privilegeScenarios(kind: RuntimeKind): void {
  describe(`privileged containers and host paths on a real ${kind}, when the config allows them`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    let hostDir: string;
    const creds = () => ({ registryCredentials: env.credentials });

    before(async () => {
      env = await startRuntimeEnvironment('privileges', kind);
      agent = await startTestAgent(env, { security: { allowPrivileged: true, allowHostPathMounts: true } });
      hostDir = mkdtempSync(join(tmpdir(), 'berth-hostpath-'));
      writeFileSync(join(hostDir, 'from-host'), 'hello from the host\n');
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
      rmSync(hostDir, { recursive: true, force: true });
    });

    /** Runs one container to its end; returns it. */
    async function runToEnd(name: string, overrides: Parameters<typeof container>[2]) {
      const id = taskId(name);
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await agent.calls.run(task(id, [container('app', env.image, { ...creds(), ...overrides })]));
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED), 60_000);
      });
      return containerOf(await agent.calls.get(id), 'app');
    }

    it('gives a privileged container the admin capabilities, and a plain one not', async () => {
      const privileged = await runToEnd('priv', { privileged: true, command: ['sh', '-c', HAS_ADMIN_CAPABILITIES] });
      assert.equal(privileged.exitCode, 0, privileged.reason);
      assert.equal((await runToEnd('plain', { command: ['sh', '-c', HAS_ADMIN_CAPABILITIES] })).exitCode, 1);
    });

    it('mounts host paths read-only and read-write', async () => {
      const mounted = await runToEnd('mounts', {
        mountPoints: [
          { hostPath: hostDir, containerPath: '/data', readOnly: false, sourceVolume: '' },
          { hostPath: join(hostDir, 'from-host'), containerPath: '/etc/from-host', readOnly: true, sourceVolume: '' },
        ],
        command: ['sh', '-c', 'test "$(cat /etc/from-host)" = "hello from the host" && echo written > /data/from-container && ! touch /etc/from-host'],
      });
      assert.equal(mounted.exitCode, 0);
      assert.equal(readFileSync(join(hostDir, 'from-container'), 'utf8'), 'written\n');
    });

    it('stops the task with a reason when a host path does not exist', async () => {
      const missing = join(hostDir, 'no-such-dir');
      const app = await runToEnd('nomount', { mountPoints: [{ hostPath: missing, containerPath: '/data', readOnly: false, sourceVolume: '' }], command: ['true'] });
      assert.match(app.reason, new RegExp(`cannot (create|start) container: .*${missing.replace(/[/.]/g, '\\$&')}`));
    });
  });
}
