/**
 * Container and task statuses. Both only move forward, in this order:
 * NONE → PULLED → CREATED → RUNNING → STOPPED. A container may skip steps (a container that never
 * started goes from PULLED straight to STOPPED), never go back.
 */
export const STATUSES = ['NONE', 'PULLED', 'CREATED', 'RUNNING', 'STOPPED'] as const;
export type ContainerStatus = (typeof STATUSES)[number];
export type TaskStatus = ContainerStatus;

/** Only the two statuses a container or task can be asked to reach. */
export type DesiredStatus = 'RUNNING' | 'STOPPED';

export const HEALTH_STATUSES = ['NONE', 'UNKNOWN', 'HEALTHY', 'UNHEALTHY'] as const;
/** NONE: the container has no health check. */
export type HealthStatus = (typeof HEALTH_STATUSES)[number];

export function statusRank(status: ContainerStatus): number {
  return STATUSES.indexOf(status);
}

/** True when `next` is strictly later than `current`. */
export function isForward(current: ContainerStatus, next: ContainerStatus): boolean {
  return statusRank(next) > statusRank(current);
}

export function earliest(statuses: Iterable<ContainerStatus>): ContainerStatus | undefined {
  let result: ContainerStatus | undefined;
  for (const status of statuses) {
    if (result === undefined || statusRank(status) < statusRank(result)) result = status;
  }
  return result;
}
