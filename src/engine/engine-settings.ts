import type { RequestLimits } from './admission/request-limits.js';
import type { RestartBackoff } from './tasks/restart-policy.js';
import type { RetryPolicy } from './retry.js';
import type { SecuritySettings } from './admission/security-policy.js';
import type { Ulimit } from './model/task-definition.js';

/** The engine's settings, already validated and in milliseconds (see src/config). */
export interface EngineSettings {
  /** Written on every container; only containers with this id are ever adopted or reaped. */
  agentId: string;
  /** Stop timeout of containers that do not set their own. */
  defaultStopTimeoutMs: number;
  /** How long a stopped task's containers are kept before they are removed. */
  taskCleanupWaitMs: number;
  /** Minimum time between two pull progress events of one container. */
  pullProgressIntervalMs: number;
  /** Pids limit of containers that set none; 0 for no limit. */
  defaultPidsLimit: number;
  /** Resource limits of containers that set none of that name. */
  defaultUlimits: Ulimit[];
  /** Back-off between restarts of a container under a restart policy. */
  restartBackoff: RestartBackoff;
  /** Period of the relist that catches runtime events the stream missed (± 10% jitter). */
  relistIntervalMs: number;
  /** A container with this agent's labels that no task owns is removed after this long. */
  orphanGracePeriodMs: number;
  /** An interactive session through which nothing passed for this long is ended. */
  sessionIdleTimeoutMs: number;
  /** Retries of runtime calls that fail because the daemon is down or slow. */
  transientRetry: RetryPolicy;
  /** What tasks may ask for: privileged containers, host paths, the host's network. */
  security: SecuritySettings;
  /** Bounds on what one request may carry. */
  limits: RequestLimits;
}
