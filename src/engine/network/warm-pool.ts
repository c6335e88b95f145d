import type { Logger } from 'pino';
import type { CniAttachmentRecord } from '../store/records.js';

/** What the pool asks of the network: make one namespace with ADD done, and delete one. */
export interface WarmNamespaceMaker {
  /** Makes a namespace and runs ADD in it; on failure nothing of it is left. */
  makeWarm(): Promise<CniAttachmentRecord>;
  /** DEL, then the namespace goes. */
  release(attachment: CniAttachmentRecord): Promise<void>;
}

/** Failures in a row back off from 1 s, doubling, to this. */
const MAX_RETRY_DELAY_MS = 60_000;

/** Launches this close together are one burst: namespaces are made again after it. */
export const DEFAULT_QUIET_MS = 250;
/** The longest one launch keeps the pool from making namespaces, should it never be said to end. */
export const MAX_LAUNCH_HOLD_MS = 30_000;

/**
 * Network namespaces with CNI ADD already done, kept ready so that a task that needs nothing of
 * its own from the network (no host port) skips namespace set-up at launch. One is made at a time,
 * in the background, until `size` are ready; one taken is made again once launches pause: no
 * launch of a task on the network is under way (from its namespace taken or its set-up begun until
 * the task runs or stops, `launchBegan` to `launchEnded`), and none began or ended for `quietMs`.
 * The pool does not compete with launches for the plugins and the CPU: making one (on Docker, a
 * pause container too) costs about what a launch does. A maker that fails is tried again after a
 * delay that doubles, so a broken plugin costs little. Namespaces are made only while the pool
 * runs; `stop` deletes those that were not taken.
 */
export class WarmNamespacePool {
  private readonly ready: CniAttachmentRecord[] = [];
  private filling: Promise<void> | undefined;
  private running = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Launches under way, by task id, each with the timer that ends its hold at the latest. */
  private readonly launches = new Map<string, NodeJS.Timeout>();
  /** When a launch last began or ended (performance.now()). */
  private lastLaunch = -Infinity;
  private quietTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly size: number,
    private readonly maker: WarmNamespaceMaker,
    private readonly log: Logger,
    private readonly quietMs = DEFAULT_QUIET_MS,
    private readonly maxLaunchHoldMs = MAX_LAUNCH_HOLD_MS,
  ) {}

  /** Namespaces ready now. */
  get available(): number {
    return this.ready.length;
  }

  start(): void {
    if (this.size <= 0 || this.running) return;
    this.running = true;
    this.fill();
  }

  /**
   * A ready namespace for the launch of task `taskId`, now no longer the pool's (a new one is made
   * in its place once launches pause); undefined when none is ready.
   */
  take(taskId: string): CniAttachmentRecord | undefined {
    const attachment = this.ready.shift();
    if (attachment) this.launchBegan(taskId);
    return attachment;
  }

  /** Takes out of the pool the ready namespace `matches` picks (one found broken), for the caller to delete; a new one is made in its place. */
  discard(matches: (attachment: CniAttachmentRecord) => boolean): CniAttachmentRecord | undefined {
    const index = this.ready.findIndex(matches);
    if (index < 0) return undefined;
    const [attachment] = this.ready.splice(index, 1);
    this.fill();
    return attachment;
  }

  /**
   * Task `taskId` is launched on the network (it took a namespace, or sets one up of its own): no
   * namespace is begun until it ends, or `maxLaunchHoldMs` passed. Once per task; a second call
   * does nothing.
   */
  launchBegan(taskId: string): void {
    if (this.size <= 0) return;
    this.lastLaunch = performance.now();
    if (this.launches.has(taskId)) return;
    this.launches.set(
      taskId,
      setTimeout(() => this.launchEnded(taskId), this.maxLaunchHoldMs),
    );
  }

  /** The task runs, or stopped: namespaces are made again once no launch began or ended for `quietMs`. */
  launchEnded(taskId: string): void {
    const timer = this.launches.get(taskId);
    if (!timer) return;
    clearTimeout(timer);
    this.launches.delete(taskId);
    this.lastLaunch = performance.now();
    this.fill();
  }

  /** Stops making namespaces and deletes the ready ones (failures are logged: the next start deletes them). */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    clearTimeout(this.quietTimer);
    this.quietTimer = undefined;
    for (const timer of this.launches.values()) clearTimeout(timer);
    this.launches.clear();
    await this.filling;
    for (const attachment of this.ready.splice(0)) {
      await this.maker.release(attachment).catch((error: unknown) => this.log.warn({ err: error, namespace: attachment.containerId }, 'could not delete a warm network namespace'));
    }
  }

  private fill(): void {
    if (!this.running || this.filling || this.retryTimer || this.quietTimer || this.launches.size > 0 || this.ready.length >= this.size) return;
    if (!this.quiet()) return;
    this.filling = this.fillUntilFull().finally(() => (this.filling = undefined));
  }

  /** Whether launches paused for `quietMs`; if not, fills once they will have. */
  private quiet(): boolean {
    const waitMs = this.lastLaunch + this.quietMs - performance.now();
    if (waitMs <= 0) return true;
    this.quietTimer = setTimeout(() => {
      this.quietTimer = undefined;
      this.fill();
    }, waitMs);
    return false;
  }

  private async fillUntilFull(): Promise<void> {
    while (this.running && this.ready.length < this.size && this.launches.size === 0) {
      if (!this.quiet()) return;
      try {
        const attachment = await this.maker.makeWarm();
        this.failures = 0;
        if (this.running) this.ready.push(attachment);
        else await this.maker.release(attachment).catch((error: unknown) => this.log.warn({ err: error }, 'could not delete a warm network namespace'));
      } catch (error) {
        this.failures += 1;
        const delayMs = Math.min(1000 * 2 ** (this.failures - 1), MAX_RETRY_DELAY_MS);
        this.log.warn({ err: error, retryInMs: delayMs }, 'could not make a warm network namespace');
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.fill();
        }, delayMs);
        return;
      }
    }
  }
}
