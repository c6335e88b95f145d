import type { DesiredStatus, TaskStatus } from '../model/status.js';
import type { ContainerSnapshot, TaskNetworkStatus } from '../model/task-snapshot.js';

export type EventChange =
  | { type: 'task'; knownStatus: TaskStatus; desiredStatus: DesiredStatus; reason: string }
  | { type: 'container'; container: ContainerSnapshot }
  /** The task's CNI network was set up (its addresses) or torn down (undefined). */
  | { type: 'network'; network?: TaskNetworkStatus }
  /** The task was cleaned up and forgotten. */
  | { type: 'removed' }
  /**
   * A container labelled with this agent's id that no task owns (created by an earlier run of the
   * agent that never recorded it) was stopped and removed after the grace period.
   */
  | { type: 'orphan-removed'; runtimeId: string; runtimeName: string; containerName: string }
  /** Progress of an image pull for one container (rate-limited). */
  | { type: 'pull'; containerName: string; image: string; bytesDone: number; bytesTotal: number };

/** One state change, numbered. Sequences start at 1 and increase by one per event. */
export interface EngineEvent {
  sequence: number;
  time: Date;
  taskId: string;
  change: EventChange;
}
