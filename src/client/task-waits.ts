import { status } from '@grpc/grpc-js';
import { TaskStatus, type Task } from '../gen/berth/agent/v1/task.js';
import { NotFoundError, TaskRemovedError, TaskStoppedError, TaskWaitTimeoutError } from './errors.js';
import type { WatchItem, WatchOptions } from './event-watch.js';

export interface WaitOptions {
  /** Give up after this many milliseconds (TaskWaitTimeoutError); no limit when unset. */
  timeoutMs?: number;
  /** Ends the wait early: it rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** What a wait uses of its connection to the agent (a BerthClient). */
export interface WaitConnection {
  watch(options: WatchOptions): AsyncIterable<WatchItem>;
  getTask(taskId: string, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<Task>;
}

/** Whether a task whose known status is `known` has got to `awaited`: statuses only move forward. */
function reached(known: TaskStatus, awaited: TaskStatus): boolean {
  if (awaited === TaskStatus.TASK_STATUS_STOPPED) return known === TaskStatus.TASK_STATUS_STOPPED;
  return known !== TaskStatus.TASK_STATUS_STOPPED && known >= awaited;
}

/**
 * Follows one task's events (a snapshot first, resuming across reconnects) until its known status
 * gets to `awaited`, and answers with the task as GetTask gives it then.
 */
export async function waitForTask(client: WaitConnection, taskId: string, awaited: TaskStatus, options: WaitOptions): Promise<Task> {
  const stop = new AbortController();
  let timedOut = false;
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => ((timedOut = true), stop.abort()), options.timeoutMs);
  const onAbort = () => stop.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let known: TaskStatus | undefined;
  try {
    for await (const item of client.watch({ taskIds: [taskId], snapshot: true, signal: stop.signal })) {
      if (item.kind === 'snapshot') {
        const task = item.tasks.find((t) => t.definition?.id === taskId);
        if (!task) {
          if (known === undefined) throw new NotFoundError(status.NOT_FOUND, `task ${taskId} not found`);
          throw new TaskRemovedError(taskId, awaited);
        }
        known = task.knownStatus;
      } else if (item.kind === 'event') {
        const change = item.event.change;
        if (change?.$case === 'removed') throw new TaskRemovedError(taskId, awaited);
        if (change?.$case !== 'task') continue;
        known = change.value.knownStatus;
      }
      if (known === undefined) continue;
      if (reached(known, awaited)) return await client.getTask(taskId, { signal: options.signal });
      if (known === TaskStatus.TASK_STATUS_STOPPED) throw new TaskStoppedError(await client.getTask(taskId, { signal: options.signal }), awaited);
    }
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
  if (timedOut) {
    const task = await client.getTask(taskId, { timeoutMs: 5000 }).catch(() => undefined);
    throw new TaskWaitTimeoutError(taskId, awaited, options.timeoutMs!, task);
  }
  throw options.signal?.reason ?? new Error('the wait was cancelled');
}
