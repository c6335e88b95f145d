import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { TaskSnapshot } from '../../engine/model/task-snapshot.js';
import { TaskStatus as PbTaskStatus } from '../../gen/berth/agent/v1/task.js';
import { TaskReport } from '../../gen/berth/cluster/v1/node.js';
import { toPbContainer, toPbTaskStatus } from '../../server/mapping.js';
import type { ClusterKeys } from '../keys.js';
import type { Membership } from '../membership.js';
import { Backoff } from '../backoff.js';
import type { AssignedTask, MemberStore } from './member-store.js';

/** Changes to one task within this long are written as one report. */
const COALESCE_MS = 200;
/** Reports per etcd transaction (etcd's default limit is 128 operations). */
const REPORTS_PER_TXN = 100;

/**
 * Writes each assigned task's report under the agent's status prefix, bound to the agent's lease:
 * `changed` marks a task, and the marked tasks are written together a moment later, each as it is
 * then (a burst of events is one write per task). A task the agent no longer knows, or one the
 * engine forgot, has its report deleted. Writes that fail are tried again, with back-off.
 */
export class TaskReporter {
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private flushing = false;
  private stopped = false;
  private readonly backoff = new Backoff(250, 5000);

  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: ClusterKeys,
    private readonly agentId: string,
    private readonly store: MemberStore,
    private readonly findTask: (id: string) => TaskSnapshot | undefined,
    private readonly leaseId: () => string | undefined,
    private readonly membership: Membership,
    private readonly log: Logger,
  ) {}

  changed(taskId: string): void {
    this.dirty.add(taskId);
    this.schedule(COALESCE_MS);
  }

  /** Every assigned task's report is written again (a new lease: the old one's keys go with it). */
  rewriteAll(): void {
    for (const task of this.store.all()) this.dirty.add(task.taskId);
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.timer || this.flushing || this.dirty.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
  }

  private async flush(): Promise<void> {
    const lease = this.leaseId();
    // Without a lease nothing is written: a new lease rewrites every report.
    if (lease === undefined || this.stopped) return;
    this.flushing = true;
    const batch = [...this.dirty].slice(0, REPORTS_PER_TXN);
    for (const id of batch) this.dirty.delete(id);
    let retryIn = 0;
    try {
      const success = batch.map((id) => this.operation(id, lease)).filter((op) => op !== undefined);
      if (success.length > 0) await this.etcd.kv.txn({ compare: [], success, failure: [] });
      this.membership.ok('reports');
      this.backoff.reset();
    } catch (error) {
      for (const id of batch) this.dirty.add(id);
      this.membership.failed('reports', (error as Error).message);
      this.log.debug({ err: error }, 'writing task reports failed; trying again');
      retryIn = this.backoff.next();
    } finally {
      this.flushing = false;
    }
    this.schedule(retryIn);
  }

  /** What to write for `taskId`: its report, or its report's deletion; nothing while the engine has not taken it yet. */
  private operation(taskId: string, lease: string) {
    const key = this.keys.report(this.agentId, taskId);
    const record = this.store.get(taskId);
    const task = record?.owned ? this.findTask(taskId) : undefined;
    if (record?.owned && !record.admitted && !task && record.refusal === undefined) return undefined;
    if (!record || (record.owned && record.finished) || (record.released && !task)) return { request_delete_range: { key: Buffer.from(key) } };
    return { request_put: { key: Buffer.from(key), value: Buffer.from(TaskReport.encode(this.report(record, task)).finish()), lease } };
  }

  private report(record: AssignedTask, task: TaskSnapshot | undefined): TaskReport {
    const base = { agentId: this.agentId, taskId: record.taskId, clusterTaskId: record.clusterTaskId, assignmentRevision: record.revision, updatedAt: new Date() };
    if (!task) {
      // Refused, or stopped before it started: the agent will not run it.
      return { ...base, knownStatus: PbTaskStatus.TASK_STATUS_STOPPED, desiredStatus: PbTaskStatus.TASK_STATUS_STOPPED, reason: record.refusal ?? 'not running', containers: [], sequence: 0 };
    }
    const status = toPbTaskStatus(task);
    return {
      ...base,
      knownStatus: status.knownStatus,
      desiredStatus: status.desiredStatus,
      reason: record.refusal ?? task.reason,
      containers: task.containers.map(toPbContainer),
      sequence: task.lastSequence,
    };
  }
}
