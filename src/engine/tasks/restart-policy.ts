import type { RestartPolicy } from '../model/task-definition.js';

/** Back-off between restarts of one container (kubelet-like). */
export interface RestartBackoff {
  initialMs: number;
  maxMs: number;
  /** A run at least this long resets the back-off to `initialMs`. */
  resetAfterMs: number;
}

export type RestartDecision = { restart: true; delayMs: number } | { restart: false; reason: string };

/**
 * Whether an exited container is restarted, and after how long. ECS rules decide whether
 * (ignored exit codes; a container must have run for the restart attempt period); the back-off
 * decides when: it starts at `initialMs`, doubles with each restart up to `maxMs`, and starts over
 * after a run of `resetAfterMs` or more.
 */
export function decideRestart(policy: RestartPolicy | undefined, exitCode: number, ranForMs: number, previousDelayMs: number, backoff: RestartBackoff): RestartDecision {
  if (!policy?.enabled) return { restart: false, reason: `exited with code ${exitCode}` };
  if (policy.ignoredExitCodes.includes(exitCode)) return { restart: false, reason: `exited with code ${exitCode}, which the restart policy ignores` };
  if (policy.restartAttemptPeriodMs > 0 && ranForMs < policy.restartAttemptPeriodMs) {
    return {
      restart: false,
      reason: `exited with code ${exitCode} after running ${Math.round(ranForMs / 1000)} s, less than the restart attempt period of ${Math.round(policy.restartAttemptPeriodMs / 1000)} s; not restarted`,
    };
  }
  const delayMs = previousDelayMs === 0 || ranForMs >= backoff.resetAfterMs ? backoff.initialMs : Math.min(previousDelayMs * 2, backoff.maxMs);
  return { restart: true, delayMs };
}

/**
 * The wait before trying a restart again after its start failed: the container's restart delay
 * (at least `initialMs`), doubled for each failure after the first that the runtime answered, up
 * to `maxMs`. While the runtime is down no failure counts, so the wait stays the first.
 */
export function restartRetryDelayMs(restartDelayMs: number, countedFailures: number, backoff: RestartBackoff): number {
  const first = Math.max(restartDelayMs, backoff.initialMs);
  return Math.min(first * 2 ** Math.max(countedFailures - 1, 0), Math.max(backoff.maxMs, first));
}
