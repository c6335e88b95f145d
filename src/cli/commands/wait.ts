import { once } from 'node:events';
import { TaskStatus, type Task } from '../../gen/berth/agent/v1/task.js';
import type { GetTaskResponse, WatchEventsResponse } from '../../gen/berth/agent/v1/task_service.js';
import { unary } from '../client.js';
import type { CommandContext } from '../command.js';

/**
 * Waits until a task runs (or has stopped, which ends any wait) or has stopped, following its
 * events; returns the task as GetTask then shows it.
 */
export async function waitForTask(ctx: CommandContext, taskId: string, until: 'running' | 'stopped'): Promise<Task> {
  const reached = (status: TaskStatus) => status === TaskStatus.TASK_STATUS_STOPPED || (until === 'running' && status === TaskStatus.TASK_STATUS_RUNNING);
  const stream = ctx.client.watchEvents({ fromSequence: 0, includeSnapshot: true, taskIds: [taskId], maxEventsPerMessage: 0 });
  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (message: WatchEventsResponse) => {
      const kind = message.kind;
      if (kind?.$case === 'snapshot' && kind.value.tasks.some((t) => reached(t.knownStatus))) resolve();
      if (kind?.$case === 'event' && kind.value.change?.$case === 'task' && reached(kind.value.change.value.knownStatus)) resolve();
    });
    stream.on('error', (error: { code?: number }) => (error.code === 1 ? resolve() : reject(error)));
    stream.on('end', () => resolve());
  });
  const aborted = once(ctx.signal, 'abort').then(() => undefined);
  try {
    await Promise.race([done, aborted]);
  } finally {
    stream.cancel();
  }
  return (await unary<object, GetTaskResponse>(ctx.client, 'getTask', { taskId })).task!;
}
