import type { PortBinding } from '../../runtime/types.js';
import type { ContainerStatus, DesiredStatus, HealthStatus, TaskStatus } from '../model/status.js';
import type { TaskDefinition } from '../model/task-definition.js';

/**
 * What the state store keeps of a task and its containers: everything a restarted agent needs to
 * continue where the last one stopped. Times are milliseconds since the epoch.
 */
export interface TaskState {
  knownStatus: TaskStatus;
  desiredStatus: DesiredStatus;
  stopReason: string;
  waitReason: string;
  lastSequence: number;
  createdAt: number;
  startedAt?: number;
  stoppedAt?: number;
}

export interface ContainerState {
  knownStatus: ContainerStatus;
  desiredStatus: DesiredStatus;
  exitCode?: number;
  reason: string;
  portBindings: PortBinding[];
  healthStatus: HealthStatus;
  healthOutput: string;
  healthCheckedAt?: number;
  restartCount: number;
  lastRestartedAt?: number;
  lastExitCode?: number;
  restartDelayMs: number;
  runStartedAt?: number;
  pulledAt?: number;
  createdAt?: number;
  startedAt?: number;
  finishedAt?: number;
}

export interface ContainerRecord {
  name: string;
  /** The deterministic name under which the container is (or will be) created. */
  runtimeName: string;
  /** Undefined until the runtime's create call answered and the answer was saved. */
  runtimeId?: string;
  state: ContainerState;
}

export interface TaskRecord {
  definition: TaskDefinition;
  state: TaskState;
  containers: ContainerRecord[];
}

export interface ImageRecordRow {
  reference: string;
  pulledAt?: number;
  lastUsedAt: number;
  /** The last successful pull brought credentials (the image may be private). */
  pulledWithCredentials?: boolean;
}

export const toMs = (date: Date | undefined): number | undefined => date?.getTime();
export const toDate = (ms: number | undefined): Date | undefined => (ms === undefined ? undefined : new Date(ms));

/** One CNI attachment, as saved before ADD runs and completed with ADD's result. */
export interface CniAttachmentRecord {
  network: string;
  containerId: string;
  ifName: string;
  taskId: string;
  /** Path of the network namespace. */
  netns: string;
  /** The network configuration list ADD was given (DEL is given the same). */
  config: unknown;
  args: Record<string, string>;
  capabilityArgs: Record<string, unknown>;
  /** Undefined until ADD succeeded. */
  result?: unknown;
  /** Why ADD failed, when it did: the CNI command (VERSION: no plugin ran), the plugin, its message. */
  addFailure?: { command: string; plugin: string; msg: string };
  /**
   * Set on a warm attachment whose namespace a pause container of the pool holds (a runtime whose
   * containers join another container's namespace): the container is named as the attachment
   * (`containerId`); its runtime id once it was created.
   */
  holder?: { runtimeId?: string };
}
