import { TaskStoppedError } from '../../client/errors.js';
import { TaskStatus, type Task } from '../../gen/berth/agent/v1/task.js';
import type { CommandContext } from '../command.js';

/**
 * Waits until a task runs (or has stopped, which ends any wait) or has stopped, following its
 * events; returns the task as GetTask then shows it. Ctrl-C ends the wait with the task as it is.
 */
export async function waitForTask(ctx: CommandContext, taskId: string, until: 'running' | 'stopped'): Promise<Task> {
  try {
    return await ctx.client.waitForTask(taskId, until === 'running' ? TaskStatus.TASK_STATUS_RUNNING : TaskStatus.TASK_STATUS_STOPPED, { signal: ctx.signal });
  } catch (error) {
    if (error instanceof TaskStoppedError) return error.task;
    if (ctx.signal.aborted) return ctx.client.getTask(taskId);
    throw error;
  }
}
