import type { ContainerRuntime } from '../../runtime/container-runtime.js';
import type { HealthStatus } from '../model/status.js';
import type { HealthCheck } from '../model/task-definition.js';

/** Output kept from the last probe. */
export const HEALTH_OUTPUT_LIMIT = 1024;

export interface HealthReport {
  status: Exclude<HealthStatus, 'NONE'>;
  output: string;
  checkedAt: Date;
}

/**
 * Runs one container's health check through the runtime's exec, so it behaves the same on every
 * runtime. UNKNOWN until the first passing probe (HEALTHY) or until `retries` probes in a row
 * failed (UNHEALTHY); failures during the start period do not count. Reports every probe; the
 * caller records an event only when the status changes.
 */
export class HealthMonitor {
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly runtime: ContainerRuntime,
    private readonly runtimeId: string,
    private readonly check: HealthCheck,
    private readonly startedAt: Date,
    /** The status before the first probe: UNKNOWN, or the last one known before an agent restart. */
    private status: HealthReport['status'],
    private readonly onReport: (report: HealthReport, changed: boolean) => void,
  ) {}

  start(): void {
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.probe(), this.check.intervalMs);
  }

  private async probe(): Promise<void> {
    let passed = false;
    let output: string;
    try {
      const result = await this.runtime.exec(this.runtimeId, this.check.command, { timeoutMs: this.check.timeoutMs, maxOutputBytes: HEALTH_OUTPUT_LIMIT });
      passed = result.exitCode === 0;
      const text = result.output.toString('utf8');
      output = result.exitCode === 0 ? text : `${text}${text.endsWith('\n') || text === '' ? '' : '\n'}exit code ${result.exitCode}`;
    } catch (error) {
      output = error instanceof Error ? error.message : String(error);
    }
    if (this.stopped) return;
    const checkedAt = new Date();
    const inStartPeriod = checkedAt.getTime() - this.startedAt.getTime() < this.check.startPeriodMs;
    const previous = this.status;
    if (passed) {
      this.failures = 0;
      this.status = 'HEALTHY';
    } else if (!inStartPeriod) {
      this.failures++;
      if (this.failures >= this.check.retries) this.status = 'UNHEALTHY';
    }
    this.onReport({ status: this.status, output: output.slice(0, HEALTH_OUTPUT_LIMIT), checkedAt }, this.status !== previous);
    this.schedule();
  }
}
