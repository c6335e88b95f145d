import type { Logger } from 'pino';
import type { ContainerRuntime } from '../runtime/container-runtime.js';
import type { ContainerInfo } from '../runtime/types.js';

/** Wait before trying again to remove a container whose removal failed. */
const RETRY_DELAY_MS = 10_000;

export interface OrphanReaperOptions {
  /** How long a container must stay unowned before it is removed. */
  graceMs: number;
  /** Stop timeout used before removal. */
  stopTimeoutMs: number;
}

/**
 * Removes containers that carry this agent's labels but belong to no task it knows: created by an
 * earlier run that crashed before recording them, or left behind when a removal failed. A
 * container is only removed once it has been seen unowned for the whole grace period, so one
 * whose creation is still being recorded is never taken.
 */
export class OrphanReaper {
  /** Runtime id → when it was first seen unowned (ms). */
  private readonly firstSeen = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly runtime: ContainerRuntime,
    private readonly options: OrphanReaperOptions,
    private readonly log: Logger,
    /** Called after a container was removed. */
    private readonly onRemoved: (container: ContainerInfo) => void,
    /** Asks the engine to list again (and call `observe`) when the next grace period ends. */
    private readonly recheck: () => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** The agent-labelled containers that no task owns, as of a fresh list. Removes the overdue ones. */
  async observe(unowned: ContainerInfo[]): Promise<void> {
    const now = this.now();
    const current = new Set(unowned.map((c) => c.id));
    for (const id of this.firstSeen.keys()) if (!current.has(id)) this.firstSeen.delete(id);
    const due: ContainerInfo[] = [];
    for (const container of unowned) {
      const seen = this.firstSeen.get(container.id);
      if (seen === undefined) {
        this.firstSeen.set(container.id, now);
        this.log.info({ runtimeId: container.id, name: container.name }, 'found a container no task owns; removing it after the grace period');
      } else if (now - seen >= this.options.graceMs) due.push(container);
    }
    for (const container of due) await this.remove(container);
    this.scheduleRecheck();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async remove(container: ContainerInfo): Promise<void> {
    try {
      await this.runtime.stopContainer(container.id, this.options.stopTimeoutMs);
      await this.runtime.removeContainer(container.id);
      this.firstSeen.delete(container.id);
      this.log.warn({ runtimeId: container.id, name: container.name }, 'removed a container no task owns');
      this.onRemoved(container);
    } catch (error) {
      this.log.warn({ err: error, runtimeId: container.id, name: container.name }, 'could not remove a container no task owns; will try again');
      // Due again after a short wait, not at once.
      this.firstSeen.set(container.id, this.now() - this.options.graceMs + Math.min(this.options.graceMs, RETRY_DELAY_MS));
    }
  }

  private scheduleRecheck(): void {
    clearTimeout(this.timer);
    if (this.stopped || this.firstSeen.size === 0) return;
    const earliest = Math.min(...this.firstSeen.values());
    const delay = Math.max(0, earliest + this.options.graceMs - this.now());
    this.timer = setTimeout(() => this.recheck(), delay + 10);
  }
}
