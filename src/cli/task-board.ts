import type { Event } from '../gen/berth/agent/v1/event.js';
import type { Task } from '../gen/berth/agent/v1/task.js';
import { age, containerState, containerStatusName, ports, progressBar, statusWithDesired, taskStatusName } from './format.js';

interface Pull {
  image: string;
  done: number;
  total: number;
  /** Bytes per second over the last updates. */
  speed: number;
  at: number;
  finished: boolean;
}

/**
 * What `berthctl watch` shows: the tasks as the agent reports them, kept up to date from the
 * event stream, with a progress bar for each image being pulled. `lines()` is the view;
 * `describe(event)` is the same change as one line of text, for output that is not a terminal.
 */
export class TaskBoard {
  readonly tasks = new Map<string, Task>();
  private readonly pulls = new Map<string, Pull>();

  load(tasks: Task[]): void {
    for (const task of tasks) this.tasks.set(task.definition!.id, task);
  }

  /** Replaces every task with these (a snapshot taken again: tasks not in it are gone). */
  reload(tasks: Task[]): void {
    this.tasks.clear();
    this.pulls.clear();
    this.load(tasks);
  }

  /** Applies an event; false when it concerns a task the board does not know (fetch it, then `load`). */
  apply(event: Event, now = Date.now()): boolean {
    const change = event.change;
    if (!change) return true;
    if (change.$case === 'removed') {
      this.tasks.delete(event.taskId);
      return true;
    }
    if (change.$case === 'orphanRemoved') return true;
    const task = this.tasks.get(event.taskId);
    if (!task) return false;
    switch (change.$case) {
      case 'task':
        task.knownStatus = change.value.knownStatus;
        task.desiredStatus = change.value.desiredStatus;
        task.reason = change.value.reason;
        break;
      case 'container': {
        const container = change.value.container!;
        const index = task.containers.findIndex((c) => c.name === container.name);
        if (index >= 0) task.containers[index] = container;
        else task.containers.push(container);
        const key = `${event.taskId}/${container.name}`;
        const pull = this.pulls.get(key);
        if (pull && containerStatusName(container.knownStatus) !== 'NONE') pull.finished = true;
        break;
      }
      case 'pull': {
        const p = change.value;
        const key = `${event.taskId}/${p.containerName}`;
        const before = this.pulls.get(key);
        const elapsed = before ? (now - before.at) / 1000 : 0;
        const rate = elapsed > 0 ? (p.bytesDone - before!.done) / elapsed : 0;
        // A smoothed rate, so the number does not jump with every update.
        const speed = before && elapsed > 0 ? (before.speed > 0 ? 0.7 * before.speed + 0.3 * rate : rate) : 0;
        this.pulls.set(key, { image: p.image, done: p.bytesDone, total: p.bytesTotal, speed, at: now, finished: false });
        break;
      }
      case 'network':
        task.network = change.value.network;
        break;
    }
    return true;
  }

  /** The view: one line per task, one per container under it, a progress bar under a container being pulled. */
  lines(now = Date.now()): string[] {
    const lines: string[] = [];
    const tasks = [...this.tasks.values()].sort((a, b) => (a.createdAt?.getTime() ?? 0) - (b.createdAt?.getTime() ?? 0));
    for (const task of tasks) {
      const id = task.definition!.id;
      const address = task.network?.ipAddresses.join(', ');
      lines.push(
        `${id}  ${statusWithDesired(taskStatusName(task.knownStatus), taskStatusName(task.desiredStatus))}  ${age(task.createdAt, now)}${address ? `  ${address}` : ''}${task.reason ? `  — ${task.reason}` : ''}`,
      );
      for (const c of task.containers) {
        const bound = ports(c.portBindings);
        lines.push(`  ${c.name.padEnd(16)} ${containerState(c)}${bound ? `  ${bound}` : ''}${c.reason ? `  — ${c.reason}` : ''}`);
        const pull = this.pulls.get(`${id}/${c.name}`);
        if (pull && !pull.finished) lines.push(`    pulling ${pull.image}  ${progressBar(pull.done, pull.total, pull.speed)}`);
      }
    }
    return lines.length > 0 ? lines : ['no tasks'];
  }

  /** One line for an event, for a log of changes. Undefined for events not worth a line. */
  describe(event: Event): string | undefined {
    const time = (event.time ?? new Date()).toISOString().slice(11, 23);
    const change = event.change;
    const id = event.taskId;
    switch (change?.$case) {
      case 'task':
        return `${time}  ${id}  task ${statusWithDesired(taskStatusName(change.value.knownStatus), taskStatusName(change.value.desiredStatus))}${change.value.reason ? `  — ${change.value.reason}` : ''}`;
      case 'container': {
        const c = change.value.container!;
        return `${time}  ${id}  ${c.name} ${containerState(c)}${c.reason ? `  — ${c.reason}` : ''}`;
      }
      case 'pull': {
        const pull = this.pulls.get(`${id}/${change.value.containerName}`);
        return `${time}  ${id}  ${change.value.containerName} pulling ${change.value.image}  ${progressBar(change.value.bytesDone, change.value.bytesTotal, pull?.speed ?? 0)}`;
      }
      case 'network':
        return `${time}  ${id}  network ${change.value.network ? change.value.network.ipAddresses.join(', ') : 'torn down'}`;
      case 'removed':
        return `${time}  ${id}  removed`;
      default:
        return undefined;
    }
  }
}
