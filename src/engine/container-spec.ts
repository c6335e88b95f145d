import type { ContainerSpec } from '../runtime/types.js';
import { LABELS } from './labels.js';
import type { ContainerDefinition, TaskDefinition } from './task-definition.js';

const MIB = 1024 * 1024;

/** The runtime-neutral spec of a task's container. Berth's labels are written last, so they win. */
export function containerSpec(agentId: string, task: TaskDefinition, container: ContainerDefinition, runtimeName: string): ContainerSpec {
  return {
    name: runtimeName,
    image: container.image,
    command: container.command.length > 0 ? container.command : undefined,
    entrypoint: container.entrypoint.length > 0 ? container.entrypoint : undefined,
    env: { ...container.environment },
    workingDir: container.workingDirectory || undefined,
    user: container.user || undefined,
    labels: {
      ...container.labels,
      [LABELS.taskId]: task.id,
      [LABELS.containerName]: container.name,
      [LABELS.family]: task.family,
      [LABELS.revision]: String(task.revision),
      [LABELS.agentId]: agentId,
    },
    cpuShares: container.cpuUnits,
    memoryBytes: container.memoryMib * MIB,
    memoryReservationBytes: container.memoryReservationMib * MIB,
    network: task.networkMode,
    ports: container.portMappings.map((p) => ({ ...p })),
  };
}
