import type { PortBinding } from '../runtime/types.js';
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
  restartCount: number;
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
}
