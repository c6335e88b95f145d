import { TaskExit, TaskOOM, TaskStart } from '../../gen/containerd/events/task.js';
import type { RuntimeEvent } from '../types.js';

/** An envelope of containerd's Events.Subscribe stream. */
export interface EventEnvelope {
  topic: string;
  timestamp?: Date;
  event?: { typeUrl: string; value: Buffer };
}

export interface EventFilter {
  /** Whether the container carries the labels the subscriber asked for. */
  matches(containerId: string): Promise<boolean>;
  /** Whether `pid` is the container's current process (an exit of another one is not the container's). */
  isCurrentProcess(containerId: string, pid: number): Promise<boolean>;
  /** Whether the container's cgroup saw the OOM killer. */
  cgroupSawOom(containerId: string): Promise<boolean>;
  /** Containers already reported as OOM-killed (shared with the adapter, so each is reported once). */
  oomKilled: Set<string>;
}

/**
 * containerd's task events as runtime events: start, exit (of the container's current process, not
 * of an exec nor of a process left by a cut-short create) and OOM. containerd may report an OOM after the exit, or not at all: an exit with 137
 * asks the cgroup, and an OOM it finds is told before the exit.
 */
export async function* runtimeEventsOf(envelopes: AsyncIterable<EventEnvelope>, filter: EventFilter): AsyncGenerator<RuntimeEvent> {
  for await (const envelope of envelopes) {
    const time = envelope.timestamp ?? new Date();
    const any = envelope.event;
    if (!any) continue;
    const type = any.typeUrl.replace(/^.*\//, '');
    let event: RuntimeEvent | undefined;
    if (type === 'containerd.events.TaskStart') {
      event = { type: 'start', containerId: TaskStart.decode(any.value).containerId, time };
    } else if (type === 'containerd.events.TaskExit') {
      const exit = TaskExit.decode(any.value);
      // Exits of exec'd processes (health checks) are not the container's.
      if (exit.id !== exit.containerId) continue;
      // Nor are those of a process a cut-short create left behind, killed after the container got another.
      if (!(await filter.matches(exit.containerId)) || !(await filter.isCurrentProcess(exit.containerId, exit.pid))) continue;
      event = { type: 'exit', containerId: exit.containerId, exitCode: exit.exitStatus, time: exit.exitedAt ?? time };
      if (exit.exitStatus === 137 && !filter.oomKilled.has(exit.containerId) && (await filter.cgroupSawOom(exit.containerId)) && (await filter.matches(exit.containerId))) {
        filter.oomKilled.add(exit.containerId);
        yield { type: 'oom', containerId: exit.containerId, time };
      }
    } else if (type === 'containerd.events.TaskOOM') {
      const oom = TaskOOM.decode(any.value);
      if (filter.oomKilled.has(oom.containerId)) continue;
      filter.oomKilled.add(oom.containerId);
      event = { type: 'oom', containerId: oom.containerId, time };
    }
    if (event && (await filter.matches(event.containerId))) yield event;
  }
}
