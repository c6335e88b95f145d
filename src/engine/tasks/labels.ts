import { createHash } from 'node:crypto';

/** Labels berth writes on every container it creates, after the user's own labels. */
export const LABELS = {
  taskId: 'berth.task-id',
  containerName: 'berth.container-name',
  family: 'berth.family',
  revision: 'berth.revision',
  agentId: 'berth.agent-id',
  /** On task volumes: the volume's name in the task definition. */
  volumeName: 'berth.volume-name',
} as const;

/** Doubles every dot, so that a single dot can separate the parts of a runtime name. */
const escapeDots = (part: string) => part.replaceAll('.', '..');

/**
 * The deterministic runtime name of a task's container, stable across agent restarts:
 * `berth-<agent>.<task>.<container>`, dots inside the agent and task ids doubled. Distinct
 * (agent, task, container) triples never share a name: read from the left, the first two single
 * dots are the separators. Names saved by an earlier version (`berth-<agent>-<task>-<container>`)
 * are kept for the tasks that have them.
 */
export function runtimeContainerName(agentId: string, taskId: string, containerName: string): string {
  return `berth-${escapeDots(agentId)}.${escapeDots(taskId)}.${containerName}`;
}

/**
 * The runtime name of a task-scoped volume, stable across agent restarts, formed as container
 * names are (`berth-<agent>.<task>.<volume>`); a name that would be too long for a directory is
 * replaced by a hash of it.
 */
export function taskVolumeName(agentId: string, taskId: string, volumeName: string): string {
  const name = `berth-${escapeDots(agentId)}.${escapeDots(taskId)}.${volumeName}`;
  return name.length <= 200 ? name : `berth-volume-${createHash('sha256').update(name).digest('hex').slice(0, 40)}`;
}
