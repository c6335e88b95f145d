import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError, PermissionDeniedError } from '../../src/engine/errors.js';
import { checkTaskAllowed } from '../../src/engine/admission/security-policy.js';
import { validateTaskDefinition, type TaskDefinitionInput } from '../../src/engine/admission/task-validation.js';
import { containerMounts, neededVolumes, taskScopedVolumes } from '../../src/engine/tasks/container-mounts.js';

const definition = (overrides: Partial<TaskDefinitionInput>): TaskDefinitionInput => ({ id: 't1', containers: [{ name: 'app', image: 'busybox' }], ...overrides });

function refused(input: TaskDefinitionInput): string[] {
  try {
    validateTaskDefinition(input);
  } catch (error) {
    assert.ok(error instanceof InvalidArgumentError);
    return error.violations.map((v) => v.field);
  }
  return [];
}

describe('volumes: validation', () => {
  it('refuses duplicate and malformed volumes, mounts of unknown ones, and mounts that name two sources', () => {
    const fields = refused(
      definition({
        volumes: [
          { name: 'data' },
          { name: 'data' },
          { name: '../up' },
          { name: 'both', host: { sourcePath: '/srv' }, dockerVolumeConfiguration: {} },
          { name: 'odd', dockerVolumeConfiguration: { scope: 'FOREVER', autoprovision: true, labels: { 'berth.task-id': 'x' } } },
          { name: 'berth-other.task.secret', dockerVolumeConfiguration: { scope: 'SHARED' } },
        ],
        containers: [
          {
            name: 'app',
            image: 'busybox',
            mountPoints: [
              { sourceVolume: 'nope', containerPath: '/a' },
              { sourceVolume: 'data', hostPath: '/srv', containerPath: '/b' },
              { sourceVolume: 'data', containerPath: '/a' },
            ],
          },
        ],
      }),
    );
    assert.deepEqual(fields.sort(), [
      'task.containers[0].mount_points[0].source_volume',
      'task.containers[0].mount_points[1]',
      'task.containers[0].mount_points[2].container_path',
      'task.volumes[1].name',
      'task.volumes[2].name',
      'task.volumes[3].docker_volume_configuration',
      'task.volumes[4].docker_volume_configuration.autoprovision',
      'task.volumes[4].docker_volume_configuration.labels',
      'task.volumes[4].docker_volume_configuration.scope',
      'task.volumes[5].name',
    ]);
  });

  it('refuses volumes_from of itself, of an unknown container, and in a circle', () => {
    const fields = refused(
      definition({
        containers: [
          { name: 'a', image: 'busybox', volumesFrom: [{ sourceContainer: 'b' }] },
          { name: 'b', image: 'busybox', volumesFrom: [{ sourceContainer: 'a' }, { sourceContainer: 'b' }, { sourceContainer: 'ghost' }] },
        ],
      }),
    );
    assert.deepEqual(fields.sort(), ['task.containers[0].volumes_from', 'task.containers[1].volumes_from[1].source_container', 'task.containers[1].volumes_from[2].source_container']);
  });

  it('counts volumes before reading them', () => {
    assert.deepEqual(refused(definition({ volumes: Array.from({ length: 101 }, (_, i) => ({ name: `v${i}` })) })), ['task.volumes']);
  });

  it('asks for security.allowHostPathMounts for host volumes and host paths, not for other volumes', () => {
    const task = validateTaskDefinition(
      definition({
        volumes: [{ name: 'host', host: { sourcePath: '/srv/data' } }, { name: 'mine' }],
        containers: [
          {
            name: 'app',
            image: 'busybox',
            mountPoints: [
              { sourceVolume: 'host', containerPath: '/h' },
              { sourceVolume: 'mine', containerPath: '/m' },
              { hostPath: '/etc', containerPath: '/e' },
            ],
          },
        ],
      }),
    );
    const settings = { allowPrivileged: false, allowHostPathMounts: false, allowHostNetwork: false, allowDevices: false, allowUnconfined: false, allowHostPid: false, allowHostIpc: false };
    assert.throws(
      () => checkTaskAllowed(task, settings),
      (error: unknown) => error instanceof PermissionDeniedError && error.violations.map((v) => v.field).join() === 'task.containers[0].mount_points[2],task.volumes[0].host.source_path',
    );
    checkTaskAllowed(
      validateTaskDefinition(definition({ volumes: [{ name: 'mine' }], containers: [{ name: 'app', image: 'busybox', mountPoints: [{ sourceVolume: 'mine', containerPath: '/m' }] }] })),
      settings,
    );
  });
});

describe('volumes: what a container mounts', () => {
  const task = validateTaskDefinition(
    definition({
      volumes: [
        { name: 'scratch' },
        { name: 'cache', dockerVolumeConfiguration: { scope: 'SHARED', autoprovision: true, driver: 'local', labels: { team: 'a' } } },
        { name: 'external', dockerVolumeConfiguration: { scope: 'SHARED' } },
        { name: 'logs', host: { sourcePath: '/var/log/app' } },
      ],
      containers: [
        {
          name: 'app',
          image: 'busybox',
          mountPoints: [
            { sourceVolume: 'scratch', containerPath: '/data' },
            { sourceVolume: 'logs', containerPath: '/logs', readOnly: true },
          ],
        },
        {
          name: 'sidecar',
          image: 'busybox',
          mountPoints: [
            { sourceVolume: 'cache', containerPath: '/data' },
            { sourceVolume: 'external', containerPath: '/ext' },
          ],
          volumesFrom: [{ sourceContainer: 'app', readOnly: true }],
        },
      ],
    }),
  );

  it('follows volumes_from: its own mounts first, then the source container’s at the paths left, read-only when asked', () => {
    const mounts = containerMounts('agent', task, task.containers[1]!);
    assert.deepEqual(mounts.mounts, [{ hostPath: '/var/log/app', containerPath: '/logs', readOnly: true }]);
    assert.deepEqual(mounts.volumeMounts, [
      { volume: 'cache', containerPath: '/data', readOnly: false },
      { volume: 'external', containerPath: '/ext', readOnly: false },
    ]);
  });

  it('names task volumes after the agent and the task, shared ones as they are; creates all but shared ones without autoprovision', () => {
    assert.deepEqual(
      neededVolumes('agent', task, containerMounts('agent', task, task.containers[1]!).volumeMounts).map((n) => [n.spec.name, n.mustExist, n.spec.labels]),
      [
        ['cache', false, { team: 'a' }],
        ['external', true, {}],
      ],
    );
    assert.deepEqual(
      neededVolumes('agent', task, containerMounts('agent', task, task.containers[0]!).volumeMounts).map((n) => [n.spec.name, n.spec.labels]),
      [['berth-agent.t1.scratch', { 'berth.agent-id': 'agent', 'berth.task-id': 't1', 'berth.volume-name': 'scratch' }]],
    );
    assert.deepEqual(taskScopedVolumes('agent', task), ['berth-agent.t1.scratch']);
  });
});
