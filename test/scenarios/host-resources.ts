import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, describe, it } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import { readStatusDetails } from '../../src/client/status-details.js';
import { startTestAgent, testPortRange, watching, type TestAgent } from '../harness/agent.js';
import { cgroupLimits } from '../harness/cgroup-limits.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, ContainerStatus, containerOf, DependencyCondition, dependsOn, is, NetworkMode, task, taskId, TaskStatus } from '../harness/task-builders.js';
import { freeLoopbackPort, textOnceServed } from '../harness/processes.js';

export function hostResourceScenarios(kind: RuntimeKind): void {
  describe(`host resources on a real ${kind}`, () => {
    const [first, last] = testPortRange(kind, 1000, 100).split('-').map(Number) as [number, number];
    const range = { first, last };
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    let calls: TestAgent['calls'];
    const creds = () => ({ registryCredentials: env.credentials });

    before(async () => {
      env = await startRuntimeEnvironment('resources', kind);
      // A small host: 100 MiB and 2048 CPU units for tasks, so queueing is easy to provoke.
      agent = await startTestAgent(env, { resources: { memoryMib: 100, cpuUnits: 2048, dynamicPortRange: testPortRange(kind, 1000, 100) }, security: { allowHostNetwork: true } });
      calls = agent.calls;
    });
    // The host is small: a task a failed test leaves running would hold what the next tests need.
    afterEach(async () => {
      const left = (await calls.list()).filter((t) => t.desiredStatus !== TaskStatus.TASK_STATUS_STOPPED);
      await Promise.all(left.map((t) => calls.stopAndWait(t.definition?.id ?? '')));
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });

    const sleeper = (overrides: Parameters<typeof container>[2] = {}) => container('app', env.image, { ...creds(), command: ['sleep', '300'], ...overrides });

    it('refuses a task larger than the host with RESOURCE_EXHAUSTED and says why', async () => {
      try {
        await calls.run(task(taskId('huge'), [sleeper({ memoryMib: 4096 })]));
        assert.fail('admitted');
      } catch (error) {
        const e = error as ServiceError;
        assert.equal(e.code, status.RESOURCE_EXHAUSTED);
        const violations = readStatusDetails(e.metadata).quotaFailure?.violations ?? [];
        assert.match(violations[0]?.description ?? '', /needs 4096 MiB memory, the host has 100 MiB/);
      }
    });

    it('makes the second of two tasks wanting one host port wait, with its reason, until the first stops', async () => {
      const first = taskId('port-a');
      const second = taskId('port-b');
      // Docker maps the port from its bridge; on containerd the task uses the host's network.
      const bridge = kind === 'docker';
      // A port free on this host now, outside the agent's dynamic range.
      let hostPort = await freeLoopbackPort();
      for (let i = 0; i < 10 && hostPort >= range.first && hostPort <= range.last; i++) hostPort = await freeLoopbackPort();
      const containerPort = bridge ? 8080 : hostPort;
      const port = { containerPort, hostPort: bridge ? hostPort : 0, protocol: 0, hostIp: '127.0.0.1', containerPortRange: '' };
      const web = () => sleeper({ command: ['httpd', '-f', '-p', String(containerPort), '-h', '/www'], portMappings: [port] });
      const networkMode = bridge ? NetworkMode.NETWORK_MODE_BRIDGE : NetworkMode.NETWORK_MODE_HOST;
      await watching(agent.client, { taskIds: [first, second] }, async (watch) => {
        await calls.run(task(first, [web()], { networkMode }));
        await watch.waitForEvent('first RUNNING', is.task(first, TaskStatus.TASK_STATUS_RUNNING));
        await calls.run(task(second, [web()], { networkMode }));
        await watch.waitForEvent('second waits', (e) => e.taskId === second && e.change?.$case === 'task' && /waiting for host resources/.test(e.change.value.reason));
        const waiting = await calls.get(second);
        assert.equal(waiting?.knownStatus, TaskStatus.TASK_STATUS_NONE);
        assert.match(waiting?.reason ?? '', new RegExp(`waiting for host resources: needs host port ${hostPort}/tcp, held by another task`));
        const info = await calls.info();
        assert.deepEqual(info.queuedTaskIds, [second]);
        assert.ok(info.consumed?.tcpPorts.includes(hostPort));
        assert.ok(info.consumed?.tcpPorts.includes(22), 'reserved ports count as consumed');
        assert.equal(info.capacity?.memoryMib, 100);
        assert.equal(info.capacity?.cpuUnits, 2048);
        assert.equal((info.free?.memoryMib ?? 0) + (info.consumed?.memoryMib ?? 0), 100);
        assert.equal(info.free?.dynamicTcpPortsFree, 100);
        await calls.stop(first);
        await watch.waitForEvent('second RUNNING', is.task(second, TaskStatus.TASK_STATUS_RUNNING));
        assert.equal(await textOnceServed(`http://127.0.0.1:${hostPort}/index.html`), 'hello from berth\n');
        await calls.stop(second);
        await watch.waitForEvent('second STOPPED', is.task(second, TaskStatus.TASK_STATUS_STOPPED));
      });
    });

    it('queues by memory in FIFO order and enforces the limits in the containers', async () => {
      const [a, b, c] = [taskId('mem-a'), taskId('mem-b'), taskId('mem-c')];
      await watching(agent.client, { taskIds: [a, b, c] }, async (watch) => {
        await calls.run(task(a, [sleeper({ memoryMib: 60, cpuUnits: 512, pidsLimit: 20 })]));
        await watch.waitForEvent('a RUNNING', is.task(a, TaskStatus.TASK_STATUS_RUNNING));
        await calls.run(task(b, [sleeper({ memoryMib: 60 })]));
        await calls.run(task(c, [sleeper({ memoryMib: 30 })]));
        await watch.waitForEvent('c waits', (e) => e.taskId === c && e.change?.$case === 'task' && /waiting for host resources/.test(e.change.value.reason));
        assert.match((await calls.get(b))?.reason ?? '', /needs 60 MiB memory, 40 MiB free/);
        assert.match((await calls.get(c))?.reason ?? '', /queued behind task/, 'c would fit, but b came first');

        const app = containerOf(await calls.get(a), 'app');
        const limits = await cgroupLimits(env.runtime, app.runtimeId);
        assert.equal(limits.memoryBytes, 60 * 1024 * 1024);
        assert.equal(limits.cpuShares, 512);
        assert.equal(limits.pids, '20');

        await calls.stop(a);
        await watch.waitForEvent('b RUNNING', is.task(b, TaskStatus.TASK_STATUS_RUNNING));
        await watch.waitForEvent('c RUNNING', is.task(c, TaskStatus.TASK_STATUS_RUNNING));
        const order = watch.events.filter((e) => is.task(b, TaskStatus.TASK_STATUS_PULLED)(e) || is.task(c, TaskStatus.TASK_STATUS_PULLED)(e)).map((e) => e.taskId);
        assert.deepEqual(order, [b, c], 'b was served before c');
        await calls.stop(b);
        await calls.stop(c);
        await watch.waitForEvent('c STOPPED', is.task(c, TaskStatus.TASK_STATUS_STOPPED));
      });
    });

    it("enforces task-level cpu and memory in one cgroup: the task's memory hog is killed, its sibling without a limit of its own runs on", async () => {
      const id = taskId('task-limits');
      const cgroup = `/berth/${agent.config.agentId}/${id}`;
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await calls.run(
          task(
            id,
            [
              sleeper({ name: 'sibling' }),
              // No memory limit of its own: only the task's 64 MiB stops it.
              sleeper({
                name: 'hog',
                essential: false,
                dependsOn: [dependsOn('sibling', DependencyCondition.DEPENDENCY_CONDITION_START)],
                // One read of 200 MB into one buffer: killed as soon as the task's 64 MiB are used.
                command: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=200M', 'count=1'],
              }),
            ],
            { memoryMib: 64, cpuUnits: 512 },
          ),
        );
        await watch.waitForEvent('hog STOPPED', is.container(id, 'hog', ContainerStatus.CONTAINER_STATUS_STOPPED), 90_000);
        const running = await calls.get(id);
        const hog = containerOf(running, 'hog');
        assert.equal(hog.exitCode, 137);
        assert.match(hog.reason, /memory limit or its task's/);
        assert.equal(running?.knownStatus, TaskStatus.TASK_STATUS_RUNNING, 'the essential sibling runs on');

        // Inside the sibling: its cgroup is in the task's, its own memory limit unset, the task's in force above it.
        const inside = await calls.shell(
          id,
          'sibling',
          'grep memory: /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; grep hierarchical_memory_limit /sys/fs/cgroup/memory/memory.stat',
        );
        assert.equal(inside.code, 0, inside.output);
        const [cgroupLine, ownLimit, hierarchical] = inside.output.split('\n');
        assert.match(cgroupLine ?? '', new RegExp(`^\\d+:memory:${cgroup.replaceAll('.', '\\.')}/`));
        assert.ok(Number(ownLimit) > 2 ** 50, `no limit of its own (${ownLimit})`);
        assert.equal(hierarchical, `hierarchical_memory_limit ${64 * 1024 * 1024}`);
        // The task's CPU: half a core's quota per 100 ms period.
        assert.equal(readFileSync(`/sys/fs/cgroup/cpu${cgroup}/cpu.cfs_quota_us`, 'utf8').trim(), '50000');

        await calls.stop(id);
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
      });
    });

    it('lets a queued task that is stopped leave the queue without taking anything', async () => {
      const [holder, quitter, next] = [taskId('q-holder'), taskId('q-quitter'), taskId('q-next')];
      await watching(agent.client, { taskIds: [holder, quitter, next] }, async (watch) => {
        await calls.run(task(holder, [sleeper({ memoryMib: 90 })]));
        await watch.waitForEvent('holder RUNNING', is.task(holder, TaskStatus.TASK_STATUS_RUNNING));
        await calls.run(task(quitter, [sleeper({ memoryMib: 50 })]));
        await calls.run(task(next, [sleeper({ memoryMib: 10 })]));
        await watch.waitForEvent('quitter waits', (e) => e.taskId === quitter && e.change?.$case === 'task' && /waiting for host resources/.test(e.change.value.reason));
        await calls.stop(quitter);
        await watch.waitForEvent('quitter STOPPED', is.task(quitter, TaskStatus.TASK_STATUS_STOPPED));
        await watch.waitForEvent('next RUNNING', is.task(next, TaskStatus.TASK_STATUS_RUNNING));
        const quit = await calls.get(quitter);
        assert.equal(quit?.resources, undefined, 'it never held resources');
        assert.equal(containerOf(quit, 'app').runtimeId, '', 'nothing was created');
        const info = await calls.info();
        assert.equal(info.consumed?.memoryMib, 100);
        await calls.stop(holder);
        await calls.stop(next);
        await watch.waitForEvent('next STOPPED', is.task(next, TaskStatus.TASK_STATUS_STOPPED));
      });
    });

    it('enforces the pids limit', async () => {
      // Starts 30 background sleeps, then waits: 32 processes in all.
      const forker = (pidsLimit: number) =>
        container('forker', env.image, { ...creds(), pidsLimit, memoryReservationMib: 16, command: ['sh', '-c', 'i=0; while [ $i -lt 30 ]; do sleep 300 & i=$((i+1)); done; exec sleep 300'] });
      const roomy = taskId('pids-ok');
      const tight = taskId('pids-tight');
      await watching(agent.client, { taskIds: [roomy, tight] }, async (watch) => {
        await calls.run(task(roomy, [forker(100)]));
        await watch.waitForEvent('roomy RUNNING', is.task(roomy, TaskStatus.TASK_STATUS_RUNNING));
        const ok = containerOf(await calls.get(roomy), 'forker');
        const roomyLimits = await cgroupLimits(env.runtime, ok.runtimeId);
        assert.equal(roomyLimits.pids, '100');
        assert.equal(roomyLimits.memoryReservationBytes, 16 * 1024 * 1024, 'the soft limit is set');
        await calls.stop(roomy);

        await calls.run(task(tight, [forker(10)]));
        await watch.waitForEvent('tight STOPPED', is.task(tight, TaskStatus.TASK_STATUS_STOPPED));
        const failed = containerOf(await calls.get(tight), 'forker');
        assert.ok(failed.exitCode !== undefined && failed.exitCode !== 0, `the shell could not fork past the limit (exit code ${failed.exitCode})`);
      });
    });

    // On containerd bridge mode goes through CNI (portmap), on Docker through Docker's own bridge.
    it('gives 20 tasks distinct dynamic host ports from the range, each reachable on 127.0.0.1', async () => {
      const ids = Array.from({ length: 20 }, () => taskId('dyn'));
      await watching(agent.client, { taskIds: ids }, async (watch) => {
        await Promise.all(
          ids.map((id) =>
            calls.run(
              task(
                id,
                [
                  container('web', env.image, {
                    ...creds(),
                    command: ['sh', '-c', `echo ${id} > /www/id; exec httpd -f -p 8080 -h /www`],
                    portMappings: [{ containerPort: 8080, hostPort: 0, protocol: 0, hostIp: '127.0.0.1', containerPortRange: '' }],
                  }),
                ],
                { networkMode: NetworkMode.NETWORK_MODE_BRIDGE },
              ),
            ),
          ),
        );
        await Promise.all(ids.map((id) => watch.waitForEvent(`${id} RUNNING`, is.task(id, TaskStatus.TASK_STATUS_RUNNING), 120_000)));
        const ports = new Map<number, string>();
        for (const id of ids) {
          const snapshot = await calls.get(id);
          const binding = containerOf(snapshot, 'web').portBindings[0]!;
          assert.ok(binding.hostPort >= range.first && binding.hostPort <= range.last, `port ${binding.hostPort} outside the range`);
          assert.deepEqual(snapshot?.resources?.tcpPorts, [binding.hostPort]);
          assert.ok(!ports.has(binding.hostPort), `port ${binding.hostPort} given twice`);
          ports.set(binding.hostPort, id);
        }
        for (const [port, id] of ports) {
          assert.equal((await textOnceServed(`http://127.0.0.1:${port}/id`)).trim(), id);
        }
        await Promise.all(ids.map((id) => calls.stop(id)));
        await Promise.all(ids.map((id) => watch.waitForEvent(`${id} STOPPED`, is.task(id, TaskStatus.TASK_STATUS_STOPPED), 120_000)));
      });
    });
  });
}
