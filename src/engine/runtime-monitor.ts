import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { ContainerRuntime } from '../runtime/container-runtime.js';
import type { RuntimeVersion } from '../runtime/types.js';

export interface RuntimeMonitorOptions {
  /** Time between checks while the runtime answers. */
  checkIntervalMs: number;
  /** First retry delay after a failed check; doubles up to maxBackoffMs. */
  initialBackoffMs: number;
  maxBackoffMs: number;
}

export type RuntimeAvailability = { available: true; version: RuntimeVersion } | { available: false; reason: string };

/**
 * Knows whether the container runtime answers. Checks it periodically, retries with back-off
 * while it is down, and logs once per outage (when it goes down and when it comes back), not once
 * per try. Emits "change" with the new availability.
 */
export class RuntimeMonitor extends EventEmitter<{ change: [RuntimeAvailability] }> {
  private state: RuntimeAvailability = { available: false, reason: 'not checked yet' };
  private timer: NodeJS.Timeout | undefined;
  private backoffMs: number;
  private running = false;
  private checking: Promise<void> | undefined;

  constructor(
    private readonly runtime: ContainerRuntime,
    private readonly options: RuntimeMonitorOptions,
    private readonly log: Logger,
  ) {
    super();
    this.backoffMs = options.initialBackoffMs;
  }

  get availability(): RuntimeAvailability {
    return this.state;
  }

  /** Runs the first check and resolves once it is done, whatever its result. */
  async start(): Promise<void> {
    this.running = true;
    await this.checkNow();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  /** Checks at once (e.g. after a call failed as "unavailable"); concurrent calls share one check. */
  checkNow(): Promise<void> {
    this.checking ??= this.check().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async check(): Promise<void> {
    clearTimeout(this.timer);
    let next: RuntimeAvailability;
    try {
      next = { available: true, version: await this.runtime.ping() };
    } catch (error) {
      next = { available: false, reason: error instanceof Error ? error.message : String(error) };
    }
    const was = this.state;
    this.state = next;
    if (next.available) {
      this.backoffMs = this.options.initialBackoffMs;
      if (!was.available) {
        this.log.info({ runtime: this.runtime.name, version: next.version.version }, 'container runtime is available');
        this.emit('change', next);
      }
    } else if (was.available || was.reason === 'not checked yet') {
      this.log.error({ runtime: this.runtime.name, reason: next.reason }, 'container runtime is unavailable; retrying with back-off');
      this.emit('change', next);
    }
    if (!this.running) return;
    const delay = next.available ? this.options.checkIntervalMs : this.backoffMs;
    if (!next.available) this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs);
    this.timer = setTimeout(() => void this.checkNow(), delay);
  }
}
