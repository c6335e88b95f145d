import type { ContainerSpec, VolumeSpec } from '../../runtime/types.js';
import type { ContainerDefinition, TaskDefinition, Volume } from '../model/task-definition.js';
import { LABELS, taskVolumeName } from './labels.js';

/** What a container mounts, in the runtime's terms: host paths bound, and runtime volumes by name. */
export type ContainerMounts = Pick<ContainerSpec, 'mounts' | 'volumeMounts'>;

/** A volume the runtime must have before a container that mounts it is created. */
export interface NeededVolume {
  spec: VolumeSpec;
  /** shared without autoprovision: must exist already; berth does not create it. */
  mustExist: boolean;
}

/** The runtime name of a task volume (not a host one): its own name when shared, a name of the task's otherwise. */
export function runtimeVolumeName(agentId: string, taskId: string, volume: Volume): string {
  return volume.scope === 'shared' ? volume.name : taskVolumeName(agentId, taskId, volume.name);
}

/**
 * The mounts of a container: its own mount points, then those of the containers it takes
 * volumes from (following their volumes_from in turn; validation refused cycles), at paths it
 * does not mount itself. volumes_from with read_only makes every mount it brings read-only.
 */
export function containerMounts(agentId: string, task: TaskDefinition, container: ContainerDefinition): ContainerMounts {
  const mounts: NonNullable<ContainerSpec['mounts']> = [];
  const volumeMounts: NonNullable<ContainerSpec['volumeMounts']> = [];
  const taken = new Set<string>();
  const visit = (c: ContainerDefinition, forceReadOnly: boolean, seen: Set<string>) => {
    if (seen.has(c.name)) return;
    seen.add(c.name);
    for (const m of c.mountPoints ?? []) {
      if (taken.has(m.containerPath)) continue;
      taken.add(m.containerPath);
      const readOnly = m.readOnly || forceReadOnly;
      const volume = m.sourceVolume ? task.volumes?.find((v) => v.name === m.sourceVolume) : undefined;
      if (!m.sourceVolume) mounts.push({ hostPath: m.hostPath, containerPath: m.containerPath, readOnly });
      else if (volume?.hostPath) mounts.push({ hostPath: volume.hostPath, containerPath: m.containerPath, readOnly });
      else if (volume) volumeMounts.push({ volume: runtimeVolumeName(agentId, task.id, volume), containerPath: m.containerPath, readOnly });
    }
    for (const from of c.volumesFrom ?? []) {
      const source = task.containers.find((other) => other.name === from.sourceContainer);
      if (source) visit(source, forceReadOnly || from.readOnly, seen);
    }
  };
  visit(container, false, new Set());
  return { mounts, volumeMounts };
}

/** The runtime volumes a container's spec mounts (its volume mounts, from containerMounts), each once. */
export function neededVolumes(agentId: string, task: TaskDefinition, volumeMounts: ContainerMounts['volumeMounts']): NeededVolume[] {
  const names = new Set((volumeMounts ?? []).map((m) => m.volume));
  return (task.volumes ?? [])
    .filter((v) => !v.hostPath && names.has(runtimeVolumeName(agentId, task.id, v)))
    .map((v) => ({
      spec: {
        name: runtimeVolumeName(agentId, task.id, v),
        driver: v.driver,
        driverOptions: { ...v.driverOptions },
        labels: v.scope === 'task' ? { ...v.labels, [LABELS.agentId]: agentId, [LABELS.taskId]: task.id, [LABELS.volumeName]: v.name } : { ...v.labels },
      },
      mustExist: v.scope === 'shared' && !v.autoprovision,
    }));
}

/** The runtime names of the task's task-scoped volumes: what its cleanup removes. */
export function taskScopedVolumes(agentId: string, task: TaskDefinition): string[] {
  return (task.volumes ?? []).filter((v) => !v.hostPath && v.scope === 'task').map((v) => runtimeVolumeName(agentId, task.id, v));
}
