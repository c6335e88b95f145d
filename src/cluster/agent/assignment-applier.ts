import { status as GrpcStatus } from '@grpc/grpc-js';
import type { TaskDefinitionInput } from '../../engine/admission/task-validation.js';
import { crashPoint } from '../../engine/crash-points.js';
import { InvalidArgumentError, StoreUnavailableError, UnavailableError } from '../../engine/errors.js';
import type { TaskSnapshot } from '../../engine/model/task-snapshot.js';
import { TaskStatus as PbTaskStatus } from '../../gen/berth/agent/v1/task.js';
import { Assignment } from '../../gen/berth/cluster/v1/node.js';
import { toServiceError } from '../../server/error-status.js';
import { taskDefinitionInput } from '../../server/mapping.js';
import type { AssignedTask, MemberStore } from './member-store.js';

/** The part of the engine that assignments drive: RunTask and StopTask, as over gRPC. */
export interface AssignableEngine {
  runTask(input: TaskDefinitionInput): { task: TaskSnapshot; created: boolean };
  stopTask(id: string, reason: string): TaskSnapshot;
  findTask(id: string): TaskSnapshot | undefined;
}

/** An assignment could not be applied for now (the runtime or the store is down): try again later. */
export class RetryLaterError extends Error {
  override readonly name = 'RetryLaterError';
}

/** Most assignments one agent takes; more are refused with a reason. */
export const MAX_ASSIGNED_TASKS = 10_000;

/** Longest reason kept from an engine error. */
const MAX_REASON_CHARS = 1024;

/**
 * Applies assignment changes to the engine with RunTask's semantics, and remembers which tasks
 * came from assignments (MemberStore) so that tasks sent to the agent directly are never touched:
 * an assignment whose task id is taken by a direct task is refused, and only assigned tasks are
 * stopped when their assignments go. Every change to a task tells `changed`, so its report is
 * written.
 */
export class AssignmentApplier {
  constructor(
    private readonly engine: AssignableEngine,
    private readonly store: MemberStore,
    private readonly changed: (taskId: string) => void,
  ) {}

  /**
   * The assignment of `taskId` is now `value` (undefined: deleted) at etcd revision `revision`.
   * Throws RetryLaterError when the engine cannot take it yet.
   */
  apply(taskId: string, value: Uint8Array | undefined, revision: number): void {
    if (value === undefined) return this.release(taskId, 'its assignment was deleted');
    const known = this.store.get(taskId);
    let assignment: Assignment;
    try {
      assignment = Assignment.decode(value);
    } catch (error) {
      return this.refuse(taskId, '', revision, `the assignment is not a berth.cluster.v1.Assignment: ${(error as Error).message}`);
    }
    const clusterTaskId = assignment.clusterTaskId.slice(0, 256);
    if (assignment.task?.id !== taskId) {
      return this.refuse(taskId, clusterTaskId, revision, `the assignment's task id ${JSON.stringify(assignment.task?.id?.slice(0, 128) ?? '')} is not the one in its key (${taskId})`);
    }
    if (!known?.owned && this.engine.findTask(taskId)) return this.refuse(taskId, clusterTaskId, revision, 'the task id is used by a task sent to the agent directly');
    if (!known && this.store.size >= MAX_ASSIGNED_TASKS) return this.refuse(taskId, clusterTaskId, revision, `the agent already has ${MAX_ASSIGNED_TASKS} assigned tasks (the most it takes)`);
    if (assignment.task.containers.some((c) => c.registryCredentials !== undefined)) {
      // etcd is readable by every controller and operator of the fleet: no passwords in it.
      return this.refuse(
        taskId,
        clusterTaskId,
        revision,
        'refused: containers[].registry_credentials: an assignment may not carry registry passwords (they would sit in etcd); give the agents credentials (images.registryCredentials, images.dockerConfig)',
      );
    }
    const desired = assignment.desiredStatus;
    if (desired !== PbTaskStatus.TASK_STATUS_UNSPECIFIED && desired !== PbTaskStatus.TASK_STATUS_RUNNING && desired !== PbTaskStatus.TASK_STATUS_STOPPED) {
      return this.refuse(taskId, clusterTaskId, revision, 'desired_status must be RUNNING or STOPPED');
    }
    // Intent first: the task is known as assigned before the engine has it.
    const record: AssignedTask = { taskId, clusterTaskId, revision, refusal: undefined, owned: true, released: false, finished: known?.finished ?? false, admitted: known?.admitted ?? false };
    this.store.save(record);
    if (record.finished) {
      // It ran and the engine has forgotten it: an assignment that stays is not run a second time.
      this.changed(taskId);
      return;
    }
    const stopReason = assignment.stopReason.slice(0, 256) || 'its assignment was set to STOPPED';
    if (desired === PbTaskStatus.TASK_STATUS_STOPPED) {
      if (this.engine.findTask(taskId)) this.engine.stopTask(taskId, stopReason);
      else this.store.save({ ...record, refusal: `not started: ${stopReason}` });
      this.changed(taskId);
      return;
    }
    if (!record.admitted) crashPoint('assignment-recorded');
    try {
      this.engine.runTask(taskDefinitionInput(assignment.task));
    } catch (error) {
      if (error instanceof UnavailableError || error instanceof StoreUnavailableError) {
        // Not taken: the record goes back to what it was, so that nothing reads it as a task that
        // ran (its report, a catch-up with the engine); the assignment is applied again later.
        if (known) this.store.save(known);
        else this.store.remove(taskId);
        throw new RetryLaterError(error.message);
      }
      return this.refuse(taskId, clusterTaskId, revision, refusalReason(error));
    }
    if (!record.admitted) this.store.save({ ...record, admitted: true });
    this.changed(taskId);
  }

  /** The assignment is gone: its task is stopped (and forgotten here once the engine forgets it). */
  release(taskId: string, reason: string): void {
    const known = this.store.get(taskId);
    if (!known || known.released) return;
    const task = known.owned ? this.engine.findTask(taskId) : undefined;
    if (!task || known.finished) {
      this.store.remove(taskId);
    } else {
      this.store.save({ ...known, released: true });
      if (task.desiredStatus !== 'STOPPED') this.engine.stopTask(taskId, reason);
    }
    this.changed(taskId);
  }

  /** The engine forgot `taskId` (cleaned up after it stopped). */
  forgotten(taskId: string): void {
    const known = this.store.get(taskId);
    if (!known?.owned) return;
    if (known.released) this.store.remove(taskId);
    else this.store.save({ ...known, finished: true });
    this.changed(taskId);
  }

  /** Assigned tasks whose assignments are not among `present` (after a full list): each is released. */
  releaseAllBut(present: ReadonlySet<string>): void {
    for (const task of this.store.all()) if (!present.has(task.taskId)) this.release(task.taskId, 'its assignment was deleted');
  }

  /**
   * Records why an assignment was not applied, for its report. A task that runs for an earlier
   * version of the assignment stays as it is (and stays owned); anything else is not owned.
   */
  private refuse(taskId: string, clusterTaskId: string, revision: number, refusal: string): void {
    const known = this.store.get(taskId);
    this.store.save({ taskId, clusterTaskId, revision, refusal, owned: known?.owned ?? false, released: false, finished: known?.finished ?? false, admitted: known?.admitted ?? false });
    this.changed(taskId);
  }
}

/** What went wrong, from an engine error, for a task report. */
function refusalReason(error: unknown): string {
  if (error instanceof InvalidArgumentError) {
    return `refused: ${error.violations.map((v) => `${v.field}: ${v.description}`).join('; ')}`.slice(0, MAX_REASON_CHARS);
  }
  const mapped = toServiceError(error);
  return `refused (${GrpcStatus[mapped.code ?? GrpcStatus.UNKNOWN]}): ${mapped.details ?? String(error)}`.slice(0, MAX_REASON_CHARS);
}
