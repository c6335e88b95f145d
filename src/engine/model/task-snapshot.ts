import type { PortBinding } from '../../runtime/types.js';
import type { ContainerStatus, DesiredStatus, HealthStatus, TaskStatus } from './status.js';
import type { TaskDefinition } from './task-definition.js';

/** A container's status at one moment, as reported to clients. Immutable once handed out. */
export interface ContainerSnapshot {
  name: string;
  knownStatus: ContainerStatus;
  desiredStatus: DesiredStatus;
  runtimeId?: string;
  runtimeName: string;
  exitCode?: number;
  reason: string;
  portBindings: PortBinding[];
  healthStatus: HealthStatus;
  /** Output of the last health probe, at most 1 KiB. */
  healthOutput: string;
  healthCheckedAt?: Date;
  restartCount: number;
  lastRestartedAt?: Date;
  /** Exit code of the run before the last restart. */
  lastExitCode?: number;
  gpuIds: string[];
  essential: boolean;
  pulledAt?: Date;
  createdAt?: Date;
  startedAt?: Date;
  finishedAt?: Date;
}

/** A task's status at one moment, as reported to clients. */
export interface TaskSnapshot {
  definition: TaskDefinition;
  knownStatus: TaskStatus;
  desiredStatus: DesiredStatus;
  reason: string;
  containers: ContainerSnapshot[];
  /** Sequence of the last event that changed this task. */
  lastSequence: number;
  createdAt: Date;
  startedAt?: Date;
  stoppedAt?: Date;
  /** Host resources the task holds, once it got them. */
  resources?: TaskResources;
  /** The task's CNI network while it is set up (network mode task, or bridge through CNI). */
  network?: TaskNetworkStatus;
}

/** What a task takes from the host while it runs. */
export interface TaskResources {
  cpuUnits: number;
  memoryMib: number;
  tcpPorts: number[];
  udpPorts: number[];
  gpuIds: string[];
}

/** A task's place on its CNI network, once set up. */
export interface TaskNetworkStatus {
  /** The CNI network's name. */
  network: string;
  /** The interface inside the task's namespace. */
  ifName: string;
  /** CIDR notation, e.g. 10.89.0.5/16. */
  ipAddresses: string[];
  gateways: string[];
}
