import type { Logger } from 'pino';
import type { ContainerRuntime } from '../../runtime/container-runtime.js';
import { HealthMonitor } from './health-monitor.js';
import type { ManagedContainer } from './managed-container.js';
import { decideRestart, restartRetryDelayMs, type RestartBackoff } from './restart-policy.js';

/** Restart attempts that fail while the runtime answers, before the container is given up. */
const RESTART_ATTEMPTS = 5;

export interface SupervisorHooks {
  runtime: ContainerRuntime;
  backoff: RestartBackoff;
  log: Logger;
  /** A health status changed or a restart happened: the task should look again. */
  changed(container: ManagedContainer): void;
  /** A restart could not start the container again. */
  restartFailed(container: ManagedContainer, reason: string): void;
}

/**
 * Watches a task's running containers: runs their health checks and restarts the ones whose
 * restart policy says so, after their back-off. The managed task owns the statuses; this class
 * only reports through its hooks.
 */
export class ContainerSupervisor {
  private disposed = false;

  constructor(private readonly hooks: SupervisorHooks) {}

  /** No new probes or restarts from now on (the agent is shutting down). */
  dispose(): void {
    this.disposed = true;
  }

  /**
   * The container (re)started: begin health checks, when it has one. With `keepStatus` (a running
   * container taken over after an agent restart) the last known health stands until a probe
   * changes it; otherwise health starts again at UNKNOWN.
   */
  startHealth(container: ManagedContainer, options: { keepStatus?: boolean } = {}): void {
    const check = container.definition.healthCheck;
    if (!check || !container.runtimeId || this.disposed) return;
    container.health?.stop();
    const keep = options.keepStatus && container.healthStatus !== 'NONE';
    if (!keep) container.update({ healthStatus: 'UNKNOWN' }, container.healthStatus !== 'UNKNOWN');
    const initial = container.healthStatus === 'NONE' ? 'UNKNOWN' : container.healthStatus;
    container.health = new HealthMonitor(this.hooks.runtime, container.runtimeId, check, container.runStartedAt ?? new Date(), initial, (report, changed) => {
      container.update({ healthStatus: report.status, healthOutput: report.output, healthCheckedAt: report.checkedAt }, changed);
      if (changed) {
        this.hooks.log.info({ container: container.name, health: report.status }, 'health status changed');
        this.hooks.changed(container);
      }
    });
    container.health.start();
  }

  /** The container stopped (for now or for good): no more probes or pending restart. */
  quiet(container: ManagedContainer): void {
    container.health?.stop();
    container.health = undefined;
    clearTimeout(container.restartTimer);
    container.restartTimer = undefined;
  }

  /**
   * The container exited while its task runs. Returns undefined when a restart is scheduled (the
   * container stays RUNNING meanwhile), or the reason to record when it stays stopped.
   */
  exited(container: ManagedContainer, exitCode: number, finishedAt: Date): string | undefined {
    this.quiet(container);
    const ranForMs = finishedAt.getTime() - (container.runStartedAt ?? finishedAt).getTime();
    const decision = decideRestart(container.definition.restartPolicy, exitCode, ranForMs, container.restartDelayMs, this.hooks.backoff);
    if (!decision.restart) return decision.reason;
    if (this.disposed) return `exited with code ${exitCode}`;
    container.restartDelayMs = decision.delayMs;
    container.update({ lastExitCode: exitCode, reason: `exited with code ${exitCode}; restarting in ${decision.delayMs} ms` });
    this.hooks.log.info({ container: container.name, exitCode, delayMs: decision.delayMs }, 'restarting container after back-off');
    container.restartTimer = setTimeout(() => void this.restart(container), decision.delayMs);
    return undefined;
  }

  private async restart(container: ManagedContainer): Promise<void> {
    container.restartTimer = undefined;
    const id = container.runtimeId as string;
    container.busy = 'start';
    const now = new Date();
    container.runStartedAt = now;
    try {
      await this.hooks.runtime.startContainer(id);
      container.busy = undefined;
      container.restartFailures = 0;
      container.update({ restartCount: container.restartCount + 1, lastRestartedAt: now, reason: '' });
      this.startHealth(container);
      this.hooks.changed(container);
    } catch (error) {
      container.busy = undefined;
      const reason = `cannot restart container: ${error instanceof Error ? error.message : String(error)}`;
      const runtimeDown = !(await this.runtimeAnswers());
      // Only a try the runtime answered counts: an outage, however long, gives up nothing.
      if (!runtimeDown) container.restartFailures++;
      if (!this.disposed && container.restartTimer === undefined && (runtimeDown || container.restartFailures < RESTART_ATTEMPTS)) {
        // Try again, keeping the container RUNNING meanwhile: once the runtime is back the restart
        // goes through. The wait grows with the counted failures, so that the tries span a
        // passing trouble of the runtime rather than a second.
        const delayMs = restartRetryDelayMs(container.restartDelayMs, container.restartFailures, this.hooks.backoff);
        container.update({ reason: `${reason}; trying again in ${delayMs} ms` });
        container.restartTimer = setTimeout(() => void this.restart(container), delayMs);
        return;
      }
      container.restartFailures = 0;
      this.hooks.restartFailed(container, reason);
    }
  }

  private async runtimeAnswers(): Promise<boolean> {
    try {
      await this.hooks.runtime.ping();
      return true;
    } catch {
      return false;
    }
  }
}
