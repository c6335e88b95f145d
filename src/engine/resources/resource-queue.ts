import { CoalescedRun } from '../coalesced-run.js';
import { StoreUnavailableError } from '../errors.js';
import type { HostResourceManager, ResourceNeeds } from './host-resources.js';
import type { TaskResources } from '../model/task-snapshot.js';

/** A task as the queue sees it. */
export interface QueuedTask {
  readonly id: string;
  readonly needs: ResourceNeeds;
  /** True once the task is desired STOPPED: it leaves the queue without consuming. */
  readonly withdrawn: boolean;
  grant(resources: TaskResources): void;
  /** Still waiting; `shortfall` says what is missing. */
  waiting(shortfall: string): void;
  /** Can never be granted as things are (a host port another program holds): the task stops. */
  refuse(reason: string): void;
}

/**
 * Tasks waiting for host resources, first in, first out: the task at the head is served before
 * any behind it, so a large task is not starved by small ones. Woken on every enqueue and every
 * release; one pass at a time, so dynamic ports are never handed out twice.
 */
export class ResourceQueue {
  private readonly queue: QueuedTask[] = [];
  private readonly passes = new CoalescedRun(() => this.serve());
  private retry: NodeJS.Timeout | undefined;

  constructor(private readonly resources: HostResourceManager) {}

  enqueue(task: QueuedTask): void {
    this.queue.push(task);
    void this.wake();
  }

  /** Task ids in queue order. */
  ids(): string[] {
    return this.queue.map((t) => t.id);
  }

  /** Serves the queue again after `ms` (one timer at a time; it does not keep the process alive). */
  private retryIn(ms: number): void {
    if (this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.wake();
    }, ms);
    this.retry.unref();
  }

  /** Serves the queue; resolves once a pass that started after this call has finished. */
  wake(): Promise<void> {
    return this.passes.run();
  }

  private async serve(): Promise<void> {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.withdrawn) {
        this.queue.shift();
        continue;
      }
      let result: Awaited<ReturnType<HostResourceManager['consume']>>;
      try {
        result = await this.resources.consume(head.id, head.needs);
      } catch (error) {
        // The reservation could not be saved: nothing was taken; the queue is served again once
        // the store takes writes.
        if (!(error instanceof StoreUnavailableError)) throw error;
        head.waiting(`waiting for the state store: ${error.reason}`);
        return;
      }
      if ('refused' in result) {
        this.queue.shift();
        head.refuse(result.refused);
        continue;
      }
      if ('shortfall' in result) {
        head.waiting(result.shortfall);
        // Nothing wakes the queue when what is missing frees itself (a port the host lets go of).
        if (result.retryAfterMs !== undefined) this.retryIn(result.retryAfterMs);
        // Everyone behind the head waits too, in order; say so.
        for (const behind of this.queue.slice(1)) {
          if (!behind.withdrawn) behind.waiting(this.resources.shortfall(behind.needs) ?? `queued behind task "${head.id}"`);
        }
        return;
      }
      this.queue.shift();
      if (head.withdrawn) {
        this.resources.release(head.id);
        continue;
      }
      head.grant(result.resources);
    }
  }
}
