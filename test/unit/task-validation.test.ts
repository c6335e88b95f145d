import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/engine/errors.js';
import { DEFAULT_REQUEST_LIMITS } from '../../src/engine/admission/request-limits.js';
import { sameDefinition } from '../../src/engine/model/task-definition.js';
import { validateTaskDefinition, type TaskDefinitionInput } from '../../src/engine/admission/task-validation.js';

const base = (): TaskDefinitionInput => ({ id: 't1', family: 'f', revision: 1, networkMode: 'BRIDGE', containers: [{ name: 'app', image: 'busybox' }] });

function violations(input: TaskDefinitionInput) {
  try {
    validateTaskDefinition(input);
  } catch (error) {
    assert.ok(error instanceof InvalidArgumentError);
    return error.violations;
  }
  return [];
}

describe('task definition validation', () => {
  it('applies defaults: essential true, tcp, bridge when unspecified', () => {
    const input = base();
    input.networkMode = 'UNSPECIFIED';
    input.containers[0]!.portMappings = [{ containerPort: 80 }];
    const def = validateTaskDefinition(input);
    assert.equal(def.networkMode, 'bridge');
    assert.equal(def.containers[0]!.essential, true);
    assert.deepEqual(def.containers[0]!.portMappings[0], { containerPort: 80, hostPort: 0, protocol: 'tcp', hostIp: '' });
  });

  it('reports every problem at once, each with its field', () => {
    const input = base();
    input.id = 'bad id';
    input.containers.push({ name: 'app', image: '', memoryMib: -1, memoryReservationMib: 0 });
    const fields = violations(input).map((v) => v.field);
    assert.deepEqual(fields.sort(), ['task.containers[1].image', 'task.containers[1].memory_mib', 'task.containers[1].name', 'task.id'].sort());
  });

  it('rejects a reservation above the hard limit', () => {
    const input = base();
    input.containers[0]!.memoryMib = 64;
    input.containers[0]!.memoryReservationMib = 128;
    assert.match(violations(input)[0]!.description, /must not exceed memory_mib/);
  });

  it('rejects port mappings in network mode none and mismatched host ports in host mode', () => {
    const none = base();
    none.networkMode = 'NONE';
    none.containers[0]!.portMappings = [{ containerPort: 80 }];
    assert.match(violations(none)[0]!.description, /need network mode bridge, task or host/);
    const host = base();
    host.networkMode = 'HOST';
    host.containers[0]!.portMappings = [{ containerPort: 80, hostPort: 8080 }];
    assert.equal(violations(host)[0]!.field, 'task.containers[0].port_mappings[0].host_port');
  });

  it('rejects the same host port mapped twice across containers', () => {
    const input = base();
    input.containers[0]!.portMappings = [{ containerPort: 80, hostPort: 8080 }];
    input.containers.push({ name: 'b', image: 'busybox', portMappings: [{ containerPort: 81, hostPort: 8080 }] });
    assert.match(violations(input)[0]!.description, /also mapped by containers\[0\]/);
  });

  it('rejects labels in the berth. namespace, self-dependencies and an unknown network mode', () => {
    const input = base();
    input.containers[0]!.labels = { 'berth.task-id': 'x' };
    input.containers[0]!.dependsOn = [{ containerName: 'app', condition: 'START' }];
    input.networkMode = 'OVERLAY';
    const found = violations(input).map((v) => `${v.field}: ${v.description}`);
    assert.ok(found.some((v) => v.includes('labels') && v.includes('reserved')));
    assert.ok(found.some((v) => v.includes('cannot depend on itself')));
    assert.ok(found.some((v) => v.startsWith('task.network_mode') && v.includes('none, host, bridge, task')));
  });

  it('in network mode task, rejects two containers mapping the same container port (they share one namespace)', () => {
    const input = base();
    input.networkMode = 'TASK';
    input.containers[0]!.portMappings = [{ containerPort: 80 }];
    input.containers.push({ name: 'b', image: 'busybox', portMappings: [{ containerPort: 80 }, { containerPort: 80, protocol: 'UDP' }] });
    assert.deepEqual(
      violations(input).map((v) => v.field),
      ['task.containers[1].port_mappings[0].container_port'],
    );
    input.networkMode = 'BRIDGE';
    assert.deepEqual(violations(input), []);
  });

  it('validates health checks, restart policies, start timeouts and task-level resources', () => {
    const input = base();
    input.memoryMib = 64;
    input.containers = [
      { name: 'db', image: 'x', healthCheck: { command: [], intervalMs: 10 }, restartPolicy: { enabled: true, restartAttemptPeriodMs: -1 }, startTimeoutMs: 0, memoryMib: 128 },
      { name: 'app', image: 'x', dependsOn: [{ containerName: 'cache', condition: 'HEALTHY' }] },
      { name: 'cache', image: 'x', pidsLimit: -1, gpuCount: -1 },
    ];
    const fields = violations(input)
      .map((v) => v.field)
      .sort();
    assert.deepEqual(fields, [
      'task.containers[0].health_check.command',
      'task.containers[0].health_check.interval',
      'task.containers[0].memory_mib',
      'task.containers[0].restart_policy.restart_attempt_period',
      'task.containers[0].start_timeout',
      'task.containers[1].depends_on[0].condition',
      'task.containers[2].gpu_count',
      'task.containers[2].pids_limit',
    ]);
    const ok = validateTaskDefinition({ ...base(), containers: [{ name: 'a', image: 'x', healthCheck: { command: ['true'] }, restartPolicy: { enabled: true } }] });
    assert.deepEqual(ok.containers[0]!.healthCheck, { command: ['true'], intervalMs: 30_000, timeoutMs: 5_000, retries: 3, startPeriodMs: 0 });
    assert.equal(ok.containers[0]!.restartPolicy?.restartAttemptPeriodMs, 300_000);
  });

  it('treats definitions that differ only in key order as the same', () => {
    const a = validateTaskDefinition({ ...base(), containers: [{ name: 'app', image: 'busybox', environment: { A: '1', B: '2' } }] });
    const b = validateTaskDefinition({ ...base(), containers: [{ name: 'app', image: 'busybox', environment: { B: '2', A: '1' } }] });
    const c = validateTaskDefinition({ ...base(), containers: [{ name: 'app', image: 'busybox', environment: { A: '1' } }] });
    assert.equal(sameDefinition(a, b), true);
    assert.equal(sameDefinition(a, c), false);
  });

  it('does not compare registry credentials, so a replay cannot test a guessed password', () => {
    const right = validateTaskDefinition({ ...base(), containers: [{ name: 'app', image: 'busybox', registryCredentials: { username: 'u', password: 'right' } }] });
    const guess = validateTaskDefinition({ ...base(), containers: [{ name: 'app', image: 'busybox', registryCredentials: { username: 'u', password: 'guess' } }] });
    const none = validateTaskDefinition({ ...base(), containers: [{ name: 'app', image: 'busybox' }] });
    assert.equal(sameDefinition(right, guess), true);
    assert.equal(sameDefinition(right, none), true);
  });
});

describe('task definition limits', () => {
  it('checks counts before contents: 150,000 mount points are refused on their number alone', () => {
    const input = base();
    input.containers[0]!.mountPoints = Array.from({ length: 150_000 }, (_, i) => ({ hostPath: 'relative', containerPath: `/m${i % 10}` }));
    assert.deepEqual(violations(input), [{ field: 'task.containers[0].mount_points', description: 'must have at most 100 mount points (limit limits.mountPointsPerContainer)' }]);
  });

  it('refuses 40,000 containers chained by depends_on without walking the chain', () => {
    const input = base();
    input.containers = Array.from({ length: 40_000 }, (_, i) => ({ name: `c${i}`, image: 'busybox', dependsOn: i > 0 ? [{ containerName: `c${i - 1}`, condition: 'START' }] : [] }));
    assert.deepEqual(
      violations(input).map((v) => v.field),
      ['task.containers'],
    );
  });

  it('bounds environment, labels and commands by count and by total size', () => {
    const input = base();
    const c = input.containers[0]!;
    c.environment = Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`V${i}`, 'x']));
    c.labels = { big: 'x'.repeat(70 * 1024) };
    c.command = Array.from({ length: 1001 }, () => 'x');
    c.entrypoint = ['x'.repeat(129 * 1024)];
    c.workingDirectory = `/${'d'.repeat(5000)}`;
    assert.deepEqual(
      violations(input)
        .map((v) => v.field)
        .sort(),
      ['task.containers[0].command', 'task.containers[0].entrypoint', 'task.containers[0].environment', 'task.containers[0].labels', 'task.containers[0].working_directory'],
    );
  });

  it('takes its limits from the caller', () => {
    const input = base();
    input.containers[0]!.portMappings = [{ containerPort: 80 }, { containerPort: 81 }];
    assert.doesNotThrow(() => validateTaskDefinition(input));
    assert.throws(() => validateTaskDefinition(input, { ...DEFAULT_REQUEST_LIMITS, portMappingsPerContainer: 1 }), /at most 1 port mappings/);
  });

  it('bounds integers and durations, and refuses values that would become syntax elsewhere', () => {
    const input = base();
    input.family = 'x;IP=10.89.0.200';
    input.containers[0]!.image = '127.0.0.1:5000//acc/busybox:1';
    input.containers[0]!.startTimeoutMs = 30 * 86_400_000;
    input.containers[0]!.memoryMib = 2 ** 40;
    input.containers[0]!.pidsLimit = 2 ** 40;
    input.containers[0]!.environment = { 'A\0B': '1' };
    input.containers[0]!.command = ['sh', '-c', 'echo\0x'];
    input.containers[0]!.registryCredentials = { username: 'a:b', password: 'secret' };
    input.containers[0]!.workingDirectory = 'relative';
    const found = violations(input);
    assert.deepEqual(found.map((v) => v.field).sort(), [
      'task.containers[0].command',
      'task.containers[0].environment',
      'task.containers[0].image',
      'task.containers[0].memory_mib',
      'task.containers[0].pids_limit',
      'task.containers[0].registry_credentials.username',
      'task.containers[0].start_timeout',
      'task.containers[0].working_directory',
      'task.family',
    ]);
    assert.ok(!JSON.stringify(found).includes('secret'), 'no violation repeats the password');
  });

  it('accepts a definition at every limit', () => {
    const limits = DEFAULT_REQUEST_LIMITS;
    const containers = Array.from({ length: limits.containersPerTask }, (_, i) => ({
      name: `c${i}`,
      image: `127.0.0.1:5000/app/c${i}:1`,
      essential: i === 0,
      dependsOn: i > 0 ? [{ containerName: `c${i - 1}`, condition: 'START' }] : [],
      portMappings: Array.from({ length: limits.portMappingsPerContainer }, (_, j) => ({ containerPort: 1000 + j })),
      mountPoints: Array.from({ length: limits.mountPointsPerContainer }, (_, j) => ({ hostPath: `/srv/${j}`, containerPath: `/m/${j}` })),
      environment: Object.fromEntries(Array.from({ length: limits.environmentEntries }, (_, j) => [`V${j}`, 'v'.repeat(200)])),
      labels: Object.fromEntries(Array.from({ length: limits.labelsPerContainer }, (_, j) => [`l${j}`, 'v'.repeat(100)])),
      command: Array.from({ length: limits.commandArguments }, () => 'a'.repeat(100)),
    }));
    const def = validateTaskDefinition({ ...base(), networkMode: 'BRIDGE', containers });
    assert.equal(def.containers.length, limits.containersPerTask);
  });
});
