/** Labels berth writes on every container it creates, after the user's own labels. */
export const LABELS = {
  taskId: 'berth.task-id',
  containerName: 'berth.container-name',
  family: 'berth.family',
  revision: 'berth.revision',
  agentId: 'berth.agent-id',
} as const;

/** The deterministic runtime name of a task's container, stable across agent restarts. */
export function runtimeContainerName(agentId: string, taskId: string, containerName: string): string {
  return `berth-${agentId}-${taskId}-${containerName}`;
}
