import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { TaskServiceClient, type GetAgentInfoResponse, type RunTaskResponse } from '../../src/gen/berth/agent/v1/task_service.js';
import { TransportProtocol } from '../../src/gen/berth/agent/v1/task_definition.js';
import { readStatusDetails } from '../../src/client/status-details.js';
import { call, startTestAgent, watching, type TestAgent } from '../harness/agent.js';
import { pushBusyboxImage } from '../harness/busybox-image.js';
import { startDockerDaemon, type TestDockerDaemon } from '../harness/docker-daemon.js';
import { HealthCheckClient, ReflectionClient } from '../harness/grpc-clients.js';
import { freeLoopbackPort } from '../harness/processes.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { container, DependencyCondition, dependsOn, is, NetworkMode, task, taskId, TaskStatus } from '../harness/task-builders.js';

/** Asserts that a call failed with `code`; returns the error for further checks. */
async function rejectsWith(promise: Promise<unknown>, code: status): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    const serviceError = error as ServiceError;
    assert.equal(serviceError.code, code, `expected ${status[code]}, got ${status[serviceError.code]}: ${serviceError.details}`);
    return serviceError;
  }
  assert.fail(`expected ${status[code]}, the call succeeded`);
}

/**
 * The API itself (validation, status codes, reflection, health, sockets) does not depend on the
 * runtime, so it is tested once, on Docker; "the runtime is down at start" is Docker's case here,
 * containerd's outages are in containerd-outage.test.ts.
 */
describe('the gRPC API, starting while Docker is down', () => {
  let dir: string;
  let registry: TestRegistry;
  let image: string;
  let docker: TestDockerDaemon | undefined;
  let agent: TestAgent;
  let health: HealthCheckClient;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-api-'));
    registry = await startRegistry(join(dir, 'registry'));
    image = await pushBusyboxImage(registry, 'berth-test/busybox', '1');
    // The agent is pointed at the socket the daemon will have once it is started, later.
    agent = await startTestAgent(`unix://${join(dir, 'docker', 'docker.sock')}`, { engine: { runtimeCheckInterval: '1s' } });
    health = new HealthCheckClient(agent.socketPath);
  });
  after(async () => {
    health?.close();
    await agent?.stop();
    await docker?.stop();
    await registry?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (definition: object) => call<object, RunTaskResponse>(agent.client, 'runTask', { task: definition });
  const valid = () => task(taskId('valid'), [container('app', image, { command: ['sleep', '300'], registryCredentials: { username: registry.username, password: registry.password } })]);

  it('creates its socket with mode 0660', () => {
    assert.equal(statSync(agent.socketPath).mode & 0o777, 0o660);
  });

  it('reports NOT_SERVING and an unavailable runtime, and refuses RunTask with UNAVAILABLE', async () => {
    assert.equal(await health.check(''), 'NOT_SERVING');
    assert.equal(await health.check('berth.agent.v1.TaskService'), 'NOT_SERVING');
    const info = await agent.calls.info();
    assert.equal(info.runtime?.name, 'docker');
    assert.equal(info.runtime?.available, false);
    assert.match(info.runtime?.reason ?? '', /unavailable|ENOENT|ECONNREFUSED/i);
    const error = await rejectsWith(run(valid()), status.UNAVAILABLE);
    assert.match(error.details, /runtime is unavailable/);
  });

  const invalidCases: { name: string; definition: () => object; field: string; description: RegExp }[] = [
    { name: 'an empty task id', definition: () => ({ ...valid(), id: '' }), field: 'task.id', description: /must match/ },
    {
      name: 'duplicate container names',
      definition: () => task(taskId('dup'), [container('a', image), container('a', image)]),
      field: 'task.containers[1].name',
      description: /duplicate container name "a"/,
    },
    {
      name: 'an unknown dependency',
      definition: () => task(taskId('unknown'), [container('a', image, { dependsOn: [dependsOn('ghost', DependencyCondition.DEPENDENCY_CONDITION_START)] })]),
      field: 'task.containers[0].depends_on[0].container_name',
      description: /unknown container "ghost"/,
    },
    {
      name: 'a dependency cycle',
      definition: () =>
        task(taskId('cycle'), [
          container('a', image, { dependsOn: [dependsOn('b', DependencyCondition.DEPENDENCY_CONDITION_START)] }),
          container('b', image, { dependsOn: [dependsOn('a', DependencyCondition.DEPENDENCY_CONDITION_SUCCESS)] }),
        ]),
      field: 'task.containers',
      description: /cycle: a → b → a/,
    },
    { name: 'an empty image', definition: () => task(taskId('noimage'), [container('a', ' ')]), field: 'task.containers[0].image', description: /is not an image reference/ },
    {
      name: 'an invalid port',
      definition: () => task(taskId('port'), [container('a', image, { portMappings: [{ containerPort: 70000, hostPort: 0, protocol: 0, hostIp: '', containerPortRange: '' }] })], { networkMode: 3 }),
      field: 'task.containers[0].port_mappings[0].container_port',
      description: /between 1 and 65535/,
    },
    {
      name: 'an invalid protocol',
      definition: () =>
        task(taskId('proto'), [container('a', image, { portMappings: [{ containerPort: 80, hostPort: 0, protocol: 9 as TransportProtocol, hostIp: '', containerPortRange: '' }] })], {
          networkMode: 3,
        }),
      field: 'task.containers[0].port_mappings[0].protocol',
      description: /must be tcp or udp/,
    },
    {
      name: 'negative memory',
      definition: () => task(taskId('mem'), [container('a', image, { memoryMib: -5 })]),
      field: 'task.containers[0].memory_mib',
      description: /must be an integer between 0 and \d+ \(got -5\)/,
    },
    {
      name: 'no essential container',
      definition: () => task(taskId('ess'), [container('a', image, { essential: false })]),
      field: 'task.containers',
      description: /at least one container must be essential/,
    },
    {
      name: 'a condition left unspecified',
      definition: () => task(taskId('cond'), [container('a', image), container('b', image, { dependsOn: [dependsOn('a', DependencyCondition.DEPENDENCY_CONDITION_UNSPECIFIED)] })]),
      field: 'task.containers[1].depends_on[0].condition',
      description: /must be one of START, COMPLETE, SUCCESS, HEALTHY/,
    },
  ];
  for (const c of invalidCases) {
    it(`rejects ${c.name} with INVALID_ARGUMENT naming ${c.field}`, async () => {
      const error = await rejectsWith(run(c.definition()), status.INVALID_ARGUMENT);
      assert.ok(error.details.includes(c.field), error.details);
      const { badRequest } = readStatusDetails(error.metadata);
      const violation = badRequest?.fieldViolations.find((v) => v.field === c.field);
      assert.ok(violation, `no field violation for ${c.field} in ${JSON.stringify(badRequest)}`);
      assert.match(violation.description, c.description);
    });
  }

  it('refuses privileged containers, host-path mounts and the host network by default, with PERMISSION_DENIED naming each setting', async () => {
    const definition = task(taskId('perm'), [container('a', image, { privileged: true, mountPoints: [{ hostPath: '/etc', containerPath: '/host-etc', readOnly: true, sourceVolume: '' }] })], {
      networkMode: NetworkMode.NETWORK_MODE_HOST,
    });
    const error = await rejectsWith(run(definition), status.PERMISSION_DENIED);
    for (const [field, setting] of [
      ['task.network_mode', 'security.allowHostNetwork'],
      ['task.containers[0].privileged', 'security.allowPrivileged'],
      ['task.containers[0].mount_points[0]', 'security.allowHostPathMounts'],
    ]) {
      assert.ok(error.details.includes(`${field}: `) && error.details.includes(`allowed only with ${setting}: true`), error.details);
    }
    assert.equal(readStatusDetails(error.metadata).errorInfo?.reason, 'NOT_ALLOWED_BY_CONFIG');
  });

  it('answers NOT_FOUND for an unknown task', async () => {
    const error = await rejectsWith(agent.calls.get('no-such-task'), status.NOT_FOUND);
    assert.match(error.details, /task "no-such-task" not found/);
    await rejectsWith(agent.calls.stop('no-such-task'), status.NOT_FOUND);
  });

  it('serves reflection: list and describe work as grpcurl uses them, v1 and v1alpha', async () => {
    const reflection = new ReflectionClient(agent.socketPath);
    const alpha = new ReflectionClient(agent.socketPath, 'v1alpha');
    try {
      // Reflection is built on its first call: calls that come while it is built are answered too.
      const [services, alphaServices, first] = await Promise.all([reflection.listServices(), alpha.listServices(), reflection.fileContainingSymbol('grpc.health.v1.Health')]);
      assert.ok(services.includes('berth.agent.v1.TaskService'), services.join(','));
      assert.ok(services.includes('grpc.health.v1.Health'), services.join(','));
      assert.deepEqual(alphaServices, services);
      assert.ok(first.some((f) => f.service.some((s) => s.name === 'Health')));
      const files = await reflection.fileContainingSymbol('berth.agent.v1.TaskService');
      const service = files.flatMap((f) => f.service).find((s) => s.name === 'TaskService');
      assert.deepEqual(service?.method.map((m) => m.name).sort(), [
        'Attach',
        'Exec',
        'ExecSession',
        'GetAgentInfo',
        'GetTask',
        'ListTasks',
        'Logs',
        'PortForward',
        'RunTask',
        'Stats',
        'StopTask',
        'WatchEvents',
      ]);
      const messages = await reflection.fileContainingSymbol('berth.agent.v1.ContainerDefinition');
      assert.ok(messages.some((f) => f.package === 'berth.agent.v1'));
    } finally {
      reflection.close();
      alpha.close();
    }
  });

  it('replaces a stale socket, and refuses to start on a socket another process answers on', async () => {
    const socket = join(dir, 'stale.sock');
    // A process that listens and is then killed leaves its socket file behind.
    const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => console.log('ready'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(holder.stdout!, 'data');
    const live = startTestAgent(`unix://${join(dir, 'nowhere.sock')}`, { grpc: { socket } });
    await assert.rejects(live, /is in use: is another berth running\?/);
    holder.kill('SIGKILL');
    await once(holder, 'exit');
    assert.ok(statSync(socket).isSocket(), 'the killed process left its socket behind');
    const replaced = await startTestAgent(`unix://${join(dir, 'nowhere.sock')}`, { grpc: { socket } });
    try {
      const info = await replaced.calls.info();
      assert.equal(info.agentId, replaced.config.agentId);
    } finally {
      await replaced.stop();
    }
  });

  it('also listens on TCP when configured', async () => {
    const port = await freeLoopbackPort();
    const tcpAgent = await startTestAgent(`unix://${join(dir, 'nowhere.sock')}`, { grpc: { tcpAddress: `127.0.0.1:${port}`, allowInsecureTcp: true } });
    const client = new TaskServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    try {
      const info = await call<object, GetAgentInfoResponse>(client, 'getAgentInfo', {});
      assert.equal(info.agentId, tcpAgent.config.agentId);
    } finally {
      client.close();
      await tcpAgent.stop();
    }
  });

  it('becomes SERVING once Docker comes up, and then runs tasks', async () => {
    docker = await startDockerDaemon(join(dir, 'docker'));
    await health.waitFor('SERVING', '');
    assert.equal(await health.check('berth.agent.v1.TaskService'), 'SERVING');
    const info = await agent.calls.info();
    assert.equal(info.runtime?.available, true);
    assert.ok((info.runtime?.version ?? '').length > 0);
    assert.ok((info.capacity?.cpuUnits ?? 0) >= 1024);
    assert.ok((info.capacity?.memoryMib ?? 0) > 0);

    const definition = valid();
    await watching(agent.client, { taskIds: [definition.id] }, async (watch) => {
      await run(definition);
      await watch.waitForEvent('task RUNNING', is.task(definition.id, TaskStatus.TASK_STATUS_RUNNING));
      await agent.calls.stop(definition.id, 'test over');
      await watch.waitForEvent('task STOPPED', is.task(definition.id, TaskStatus.TASK_STATUS_STOPPED));
    });
  });
});
