import type { ContainerDefinition } from '../model/task-definition.js';

/**
 * The pause container of a task in a CNI-networked mode: it holds the task's network namespace,
 * which the application containers join. Its name cannot clash with a user's (container names in
 * definitions have no dots). It is an essential container the clients do not see: if it dies,
 * the namespace's holder is gone and the task stops.
 */
export const PAUSE_CONTAINER = 'berth.pause';

/** Pause holds nothing worth a graceful stop. */
const PAUSE_STOP_TIMEOUT_MS = 2000;

export function pauseContainerDefinition(image: string): ContainerDefinition {
  return {
    name: PAUSE_CONTAINER,
    image,
    command: [],
    entrypoint: [],
    environment: {},
    workingDirectory: '',
    user: '',
    cpuUnits: 0,
    memoryMib: 0,
    memoryReservationMib: 0,
    portMappings: [],
    essential: true,
    dependsOn: [],
    stopTimeoutMs: PAUSE_STOP_TIMEOUT_MS,
    labels: {},
    gpuCount: 0,
    pidsLimit: 0,
  };
}
