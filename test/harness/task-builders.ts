import type { Event } from '../../src/gen/berth/agent/v1/event.js';
import { ContainerStatus, TaskStatus, type Task } from '../../src/gen/berth/agent/v1/task.js';
import { ContainerDefinition, DependencyCondition, NetworkMode, TaskDefinition } from '../../src/gen/berth/agent/v1/task_definition.js';

let taskCounter = 0;

/** A unique task id for one test. */
export function taskId(prefix: string): string {
  return `${prefix}-${process.pid}-${taskCounter++}`;
}

/** A container definition with every field at its zero value, then the overrides. */
export function container(name: string, image: string, overrides: Partial<ContainerDefinition> = {}): ContainerDefinition {
  return { ...ContainerDefinition.fromPartial({ name, image }), ...overrides };
}

export function task(id: string, containers: ContainerDefinition[], overrides: Partial<TaskDefinition> = {}): TaskDefinition {
  return { ...TaskDefinition.fromPartial({ id, family: 'test', revision: 1, networkMode: NetworkMode.NETWORK_MODE_NONE }), containers, ...overrides };
}

export const dependsOn = (containerName: string, condition: DependencyCondition) => ({ containerName, condition });
export { ContainerStatus, DependencyCondition, NetworkMode, TaskStatus };

/** Predicates over events, for EventCollector.waitForEvent. */
export const is = {
  task: (id: string, status: TaskStatus) => (e: Event) => e.taskId === id && e.change?.$case === 'task' && e.change.value.knownStatus === status,
  container: (id: string, name: string, status: ContainerStatus) => (e: Event) =>
    e.taskId === id && e.change?.$case === 'container' && e.change.value.container?.name === name && e.change.value.container.knownStatus === status,
};

export function containerOf(t: Task | undefined, name: string) {
  const found = t?.containers.find((c) => c.name === name);
  if (!found) throw new Error(`no container "${name}" in task ${t?.definition?.id}`);
  return found;
}
