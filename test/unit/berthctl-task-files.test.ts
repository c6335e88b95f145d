import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseSince } from '../../src/cli/commands/containers.js';
import { loadTaskFile, TaskFileError } from '../../src/cli/task-file.js';
import { TaskBoard } from '../../src/cli/task-board.js';
import { ContainerStatus, TaskStatus } from '../../src/gen/berth/agent/v1/task.js';
import { DependencyCondition, NetworkMode, TransportProtocol } from '../../src/gen/berth/agent/v1/task_definition.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/task-files/${name}`, import.meta.url), 'utf8');

describe('berthctl task files', () => {
  it('converts an ECS web service with a sidecar, and names every field it does not apply', () => {
    const { definition, format, warnings } = loadTaskFile('web.json', fixture('ecs-web-with-sidecar.json'));
    assert.equal(format, 'ecs');
    assert.equal(definition.family, 'shop-web');
    assert.match(definition.id, /^shop-web-[0-9a-f]{8}$/);
    assert.equal(definition.networkMode, NetworkMode.NETWORK_MODE_BRIDGE);
    const [web, router] = definition.containers;
    assert.equal(web!.cpuUnits, 256);
    assert.equal(web!.memoryMib, 128);
    assert.equal(web!.memoryReservationMib, 64);
    assert.deepEqual(web!.entrypoint, ['sh', '-c']);
    assert.deepEqual(web!.environment, { SHOP_MODE: 'production' });
    assert.deepEqual(web!.portMappings, [{ containerPort: 8080, hostPort: 0, protocol: TransportProtocol.TRANSPORT_PROTOCOL_TCP, hostIp: '', containerPortRange: '' }]);
    assert.deepEqual(web!.healthCheck?.command, ['sh', '-c', 'wget -q -O /dev/null http://127.0.0.1:8080/index.html || exit 1']);
    assert.deepEqual(web!.healthCheck?.interval, { seconds: 5, nanos: 0 });
    assert.equal(web!.healthCheck?.retries, 3);
    assert.deepEqual(web!.stopTimeout, { seconds: 5, nanos: 0 });
    assert.deepEqual(web!.labels, { team: 'storefront' });
    assert.equal(web!.essential, true);
    assert.equal(router!.essential, false);
    assert.deepEqual(router!.dependsOn, [{ containerName: 'web', condition: DependencyCondition.DEPENDENCY_CONDITION_HEALTHY }]);
    assert.deepEqual(router!.ulimits, [{ name: 'nofile', softLimit: 8192, hardLimit: 8192 }]);
    const fields = warnings.map((w) => w.split(':')[0]);
    assert.deepEqual(fields.sort(), [
      'containerDefinitions[0].portMappings[0].appProtocol',
      'containerDefinitions[0].portMappings[0].name',
      'ephemeralStorage',
      'executionRoleArn',
      'requiresCompatibilities',
    ]);
    assert.match(
      warnings.find((w) => w.startsWith('ephemeralStorage'))!,
      /writable layers/,
    );
    assert.deepEqual(web!.logConfiguration, { logDriver: 'json-file', options: { 'max-size': '1m', 'max-file': '2' }, secretOptions: [] });
  });

  it('converts an awsvpc (Fargate-style) task: network mode task, task-level cpu and memory, secrets as references', () => {
    const { definition, warnings } = loadTaskFile('api.json', fixture('ecs-awsvpc-api.json'), 'orders-1');
    assert.equal(definition.id, 'orders-1');
    assert.equal(definition.networkMode, NetworkMode.NETWORK_MODE_TASK);
    assert.equal(definition.cpuUnits, 512);
    assert.equal(definition.memoryMib, 1024);
    assert.equal(definition.containers[0]!.essential, true);
    assert.deepEqual(definition.containers[1]!.dependsOn, [{ containerName: 'api', condition: DependencyCondition.DEPENDENCY_CONDITION_START }]);
    assert.equal(
      warnings.find((w) => w.startsWith('containerDefinitions[0].secrets')),
      undefined,
    );
    assert.deepEqual(definition.containers[0]!.secrets, [{ name: 'DB_PASSWORD', valueFrom: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-db' }]);
    assert.equal(definition.containers[0]!.linuxParameters?.initProcessEnabled, true);
    for (const field of ['taskRoleArn', 'runtimePlatform'])
      assert.ok(
        warnings.some((w) => w.startsWith(`${field}:`)),
        field,
      );
  });

  it('reads what describe-task-definition prints: revision kept, host volumes mounted, other volumes named', () => {
    const { definition, warnings } = loadTaskFile('job.json', fixture('ecs-described-batch-job.json'));
    assert.equal(definition.family, 'nightly-report');
    assert.equal(definition.revision, 7);
    const report = definition.containers[1]!;
    assert.deepEqual(report.mountPoints, [{ hostPath: '', sourceVolume: 'scratch', containerPath: '/scratch', readOnly: true }]);
    assert.deepEqual(definition.volumes[0], { name: 'scratch', host: { sourcePath: '/tmp' }, dockerVolumeConfiguration: undefined });
    assert.deepEqual(report.restartPolicy, { enabled: true, ignoredExitCodes: [0], restartAttemptPeriod: { seconds: 60, nanos: 0 } });
    assert.ok(warnings.some((w) => w.startsWith('volumes[1] ("shared")')));
    assert.ok(warnings.some((w) => w.startsWith('containerDefinitions[1].mountPoints[1]')));
    for (const field of ['taskDefinitionArn', 'status', 'compatibilities', 'requiresAttributes', 'registeredAt', 'registeredBy'])
      assert.ok(
        warnings.some((w) => w.startsWith(`${field}:`)),
        field,
      );
  });

  it('refuses ECS values it cannot use, naming each field', () => {
    const bad = {
      family: 'x',
      networkMode: 'nat',
      cpu: 'lots',
      containerDefinitions: [{ name: 'a', image: 'i', portMappings: [{ containerPort: 53, protocol: 'sctp' }], dependsOn: [{ containerName: 'b', condition: 'READY' }] }],
    };
    assert.throws(
      () => loadTaskFile('bad.json', JSON.stringify(bad)),
      (error: unknown) =>
        error instanceof TaskFileError &&
        ['networkMode', 'cpu', 'containerDefinitions[0].portMappings[0].protocol', 'containerDefinitions[0].dependsOn[0].condition'].every((f) => error.problems.some((p) => p.startsWith(`${f}:`))),
    );
  });

  it('reads a berth task file in YAML: snake_case or camelCase names, short enum names, durations such as "2s"', () => {
    const { definition, format, warnings } = loadTaskFile('app.yaml', fixture('berth-app.yaml'));
    assert.equal(format, 'berth');
    assert.deepEqual(warnings, []);
    assert.equal(definition.family, 'greeter');
    assert.equal(definition.networkMode, NetworkMode.NETWORK_MODE_NONE);
    const app = definition.containers[0]!;
    assert.equal(app.memoryMib, 64);
    assert.deepEqual(app.stopTimeout, { seconds: 2, nanos: 0 });
    assert.deepEqual(app.healthCheck?.interval, { seconds: 1, nanos: 0 });
    assert.deepEqual(app.environment, { NAME: 'greeter' });
    const json = loadTaskFile(
      't.json',
      JSON.stringify({
        id: 't1',
        network_mode: 'task',
        containers: [{ name: 'a', image: 'i', portMappings: [{ containerPort: 53, protocol: 'udp' }], dependsOn: [{ containerName: 'b', condition: 'healthy' }] }],
      }),
    );
    assert.equal(json.definition.id, 't1');
    assert.equal(json.definition.networkMode, NetworkMode.NETWORK_MODE_TASK);
    assert.equal(json.definition.containers[0]!.portMappings[0]!.protocol, TransportProtocol.TRANSPORT_PROTOCOL_UDP);
    assert.equal(json.definition.containers[0]!.dependsOn[0]!.condition, DependencyCondition.DEPENDENCY_CONDITION_HEALTHY);
  });

  it('refuses unknown fields and wrong values in a berth task file, suggesting the name meant', () => {
    const text = 'family: x\nnetworkMode: bridged\ncontainers:\n  - name: a\n    imag: busybox\n    memoryMib: lots\n    stopTimeout: soon\n';
    assert.throws(
      () => loadTaskFile('x.yaml', text),
      (error: unknown) => {
        assert.ok(error instanceof TaskFileError);
        assert.deepEqual(error.problems, [
          'networkMode: must be one of none, host, bridge, task',
          'containers[0].imag: unknown field (did you mean "image"?)',
          'containers[0].memoryMib: must be a number',
          'containers[0].stopTimeout: must be a duration such as "30s", "1m30s" or a number of seconds',
        ]);
        return true;
      },
    );
    assert.throws(
      () => loadTaskFile('x.json', '{ "family": '),
      (error: unknown) => error instanceof TaskFileError && /not valid JSON or YAML/.test(error.message),
    );
  });

  it('parses --since as a duration back from now or as a time', () => {
    const now = Date.parse('2026-11-28T12:00:00Z');
    assert.equal(parseSince('10m', now).toISOString(), '2026-11-28T11:50:00.000Z');
    assert.equal(parseSince('2026-11-28T11:00:00Z', now).toISOString(), '2026-11-28T11:00:00.000Z');
    assert.throws(() => parseSince('yesterday', now), /--since/);
  });
});

describe('berthctl watch view', () => {
  it('follows events into the task view, with a progress bar and speed while an image is pulled', () => {
    const board = new TaskBoard();
    const t0 = Date.parse('2026-11-28T12:00:00Z');
    const container = (status: ContainerStatus) => ({
      name: 'app',
      knownStatus: status,
      desiredStatus: ContainerStatus.CONTAINER_STATUS_RUNNING,
      runtimeId: '',
      runtimeName: '',
      reason: '',
      portBindings: [],
      healthStatus: 0,
      restartCount: 0,
      essential: true,
      healthOutput: '',
      gpuIds: [],
    });
    board.load([
      {
        definition: { id: 't1', family: 'f', revision: 0, networkMode: 0, containers: [], cpuUnits: 0, memoryMib: 0 },
        knownStatus: TaskStatus.TASK_STATUS_NONE,
        desiredStatus: TaskStatus.TASK_STATUS_RUNNING,
        reason: '',
        containers: [container(ContainerStatus.CONTAINER_STATUS_NONE)],
        lastSequence: 0,
        createdAt: new Date(t0),
      } as never,
    ]);
    const pull = (done: number, at: number) =>
      board.apply(
        { sequence: 1, taskId: 't1', time: new Date(at), change: { $case: 'pull', value: { containerName: 'app', image: 'registry/app:1', bytesDone: done, bytesTotal: 40 * 1024 * 1024 } } },
        at,
      );
    pull(0, t0);
    pull(10 * 1024 * 1024, t0 + 1000);
    const lines = board.lines(t0 + 1000);
    assert.equal(lines[0], 't1  NONE → RUNNING  1s');
    assert.equal(lines[1], '  app              NONE');
    assert.equal(lines[2], '    pulling registry/app:1  [######------------------] 10.0 MiB / 40.0 MiB  10.0 MiB/s');
    assert.ok(board.apply({ sequence: 2, taskId: 't1', change: { $case: 'container', value: { container: { ...container(ContainerStatus.CONTAINER_STATUS_RUNNING) } } } } as never));
    assert.ok(
      board.apply({ sequence: 3, taskId: 't1', change: { $case: 'task', value: { knownStatus: TaskStatus.TASK_STATUS_RUNNING, desiredStatus: TaskStatus.TASK_STATUS_RUNNING, reason: '' } } } as never),
    );
    assert.deepEqual(board.lines(t0 + 2000), ['t1  RUNNING  2s', '  app              RUNNING']);
    assert.equal(
      board.apply({ sequence: 4, taskId: 'other', change: { $case: 'task', value: { knownStatus: 1, desiredStatus: 4, reason: '' } } } as never),
      false,
      'an unknown task is for the caller to fetch',
    );
    assert.match(
      board.describe({
        sequence: 5,
        taskId: 't1',
        time: new Date(t0),
        change: { $case: 'task', value: { knownStatus: TaskStatus.TASK_STATUS_STOPPED, desiredStatus: TaskStatus.TASK_STATUS_STOPPED, reason: 'essential container exited' } },
      } as never) ?? '',
      /t1 {2}task STOPPED {2}— essential container exited$/,
    );
  });
});
