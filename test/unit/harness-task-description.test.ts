import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Event } from '../../src/gen/berth/agent/v1/event.js';
import { ContainerStatus, TaskStatus } from '../../src/gen/berth/agent/v1/task.js';
import { describeTasks } from '../harness/agent.js';

function taskEvent(taskId: string, status: TaskStatus, reason = ''): Event {
  return { sequence: 0, taskId, change: { $case: 'task', value: { knownStatus: status, desiredStatus: TaskStatus.TASK_STATUS_RUNNING, reason } } } as Event;
}

function containerEvent(taskId: string, name: string, status: ContainerStatus, reason = '', exitCode?: number): Event {
  return { sequence: 0, taskId, change: { $case: 'container', value: { container: { name, knownStatus: status, reason, exitCode } } } } as Event;
}

describe("a wait's timeout says where the stream's tasks stood", () => {
  it("gives each task's last status and reason, and each container's", () => {
    const text = describeTasks([
      taskEvent('a', TaskStatus.TASK_STATUS_PULLED),
      containerEvent('a', 'web', ContainerStatus.CONTAINER_STATUS_CREATED),
      taskEvent('b', TaskStatus.TASK_STATUS_RUNNING),
      containerEvent('a', 'web', ContainerStatus.CONTAINER_STATUS_STOPPED, 'port 8080 is taken', 1),
      taskEvent('a', TaskStatus.TASK_STATUS_STOPPED, 'essential container web stopped'),
    ]);
    assert.equal(text, ['  b: TASK_STATUS_RUNNING', '  a: TASK_STATUS_STOPPED (essential container web stopped); web CONTAINER_STATUS_STOPPED exit 1 (port 8080 is taken)'].join('\n'));
  });

  it('describes the 30 most recently changed tasks and counts the rest', () => {
    const events = Array.from({ length: 32 }, (_, i) => taskEvent(`t${i}`, TaskStatus.TASK_STATUS_PULLED));
    const lines = describeTasks(events).split('\n');
    assert.equal(lines[0], '  (2 more tasks not shown)');
    assert.equal(lines.length, 31);
    assert.equal(lines[1], '  t2: TASK_STATUS_PULLED');
  });

  it('says so when the stream had no task or container event', () => {
    assert.equal(describeTasks([]), '  (no task or container events)');
  });
});
