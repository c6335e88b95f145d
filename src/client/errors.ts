import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type { BadRequest_FieldViolation, PreconditionFailure_Violation, QuotaFailure_Violation } from '../gen/google/rpc/error_details.js';
import { TaskStatus, type Task } from '../gen/berth/agent/v1/task.js';
import { readStatusDetails, type StatusDetails } from './status-details.js';

/**
 * An error the agent answered with (or gRPC reported for a call to it): its status code, message
 * and the google.rpc details the agent attached, decoded. Each status code has a subclass, so a
 * caller can `instanceof` the case it handles. `code`, `details` and `metadata` are those of
 * grpc-js's ServiceError, so code written for that keeps working.
 */
export class BerthError extends Error {
  override name = 'BerthError';
  /** The gRPC status code (`status.NOT_FOUND`…). */
  readonly code: status;
  /** The agent's message (the same as `message`). */
  readonly details: string;
  /** The call's trailers, `grpc-status-details-bin` among them. */
  readonly metadata: Metadata;
  /** The google.rpc details of the status, decoded. */
  readonly statusDetails: StatusDetails;

  constructor(code: status, message: string, metadata: Metadata = new Metadata(), options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.details = message;
    this.metadata = metadata;
    this.statusDetails = readStatusDetails(metadata);
  }

  /** The status code's name: `NOT_FOUND`, `UNAVAILABLE`… */
  get codeName(): string {
    return status[this.code] ?? String(this.code);
  }

  /** The ErrorInfo reason: `SEQUENCE_EXPIRED`, `WATCHER_TOO_SLOW`, `LIMIT_EXCEEDED`, `RUNTIME_UNAVAILABLE`… */
  get reason(): string | undefined {
    return this.statusDetails.errorInfo?.reason;
  }

  /** The ErrorInfo's metadata: `oldest_sequence`, `resume_from_sequence`, `limit`… */
  get info(): Record<string, string> {
    return this.statusDetails.errorInfo?.metadata ?? {};
  }
}

/** INVALID_ARGUMENT: the request was wrong; `fieldViolations` names each bad field. */
export class InvalidArgumentError extends BerthError {
  override name = 'InvalidArgumentError';
  get fieldViolations(): BadRequest_FieldViolation[] {
    return this.statusDetails.badRequest?.fieldViolations ?? [];
  }
}

/** NOT_FOUND: no such task or container. */
export class NotFoundError extends BerthError {
  override name = 'NotFoundError';
}

/** ALREADY_EXISTS: a different definition under a task id that is in use. */
export class AlreadyExistsError extends BerthError {
  override name = 'AlreadyExistsError';
}

/** PERMISSION_DENIED: the agent's config does not allow what was asked (the setting is named). */
export class PermissionDeniedError extends BerthError {
  override name = 'PermissionDeniedError';
}

/** UNAUTHENTICATED: the agent, or a proxy in front of it, did not accept the caller's credentials. */
export class UnauthenticatedError extends BerthError {
  override name = 'UnauthenticatedError';
}

/** FAILED_PRECONDITION: the task or container is not in a state that allows the call. */
export class FailedPreconditionError extends BerthError {
  override name = 'FailedPreconditionError';
  get violations(): PreconditionFailure_Violation[] {
    return this.statusDetails.preconditionFailure?.violations ?? [];
  }
}

/** RESOURCE_EXHAUSTED: a limit of the agent, or a task larger than the host; `violations` say which. */
export class ResourceExhaustedError extends BerthError {
  override name = 'ResourceExhaustedError';
  get violations(): QuotaFailure_Violation[] {
    return this.statusDetails.quotaFailure?.violations ?? [];
  }
}

/** OUT_OF_RANGE: an event sequence the agent no longer has (`SEQUENCE_EXPIRED`) or has not reached. */
export class OutOfRangeError extends BerthError {
  override name = 'OutOfRangeError';
}

/** UNAVAILABLE: the agent cannot be reached, or its runtime or state store is down. */
export class UnavailableError extends BerthError {
  override name = 'UnavailableError';
}

/** DEADLINE_EXCEEDED: the call, or the command it ran, took longer than allowed. */
export class DeadlineExceededError extends BerthError {
  override name = 'DeadlineExceededError';
}

/** CANCELLED: the call was cancelled (by the caller, or the agent shutting down). */
export class CancelledError extends BerthError {
  override name = 'CancelledError';
}

/** INTERNAL: the agent failed unexpectedly; the message carries the incident id for its log. */
export class InternalError extends BerthError {
  override name = 'InternalError';
}

const CLASSES: Partial<Record<status, new (code: status, message: string, metadata?: Metadata, options?: ErrorOptions) => BerthError>> = {
  [status.INVALID_ARGUMENT]: InvalidArgumentError,
  [status.NOT_FOUND]: NotFoundError,
  [status.ALREADY_EXISTS]: AlreadyExistsError,
  [status.PERMISSION_DENIED]: PermissionDeniedError,
  [status.UNAUTHENTICATED]: UnauthenticatedError,
  [status.FAILED_PRECONDITION]: FailedPreconditionError,
  [status.RESOURCE_EXHAUSTED]: ResourceExhaustedError,
  [status.OUT_OF_RANGE]: OutOfRangeError,
  [status.UNAVAILABLE]: UnavailableError,
  [status.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [status.CANCELLED]: CancelledError,
  [status.INTERNAL]: InternalError,
};

/**
 * The BerthError for a grpc-js error (its subclass for the status code, details decoded); a
 * BerthError as it is; anything else wrapped as UNKNOWN.
 */
export function toBerthError(error: unknown): BerthError {
  if (error instanceof BerthError) return error;
  const e = error as Partial<ServiceError> | undefined;
  if (typeof e?.code !== 'number') return new BerthError(status.UNKNOWN, error instanceof Error ? error.message : String(error), undefined, { cause: error });
  const message = e.details || e.message || status[e.code] || 'unknown error';
  const Class = CLASSES[e.code as status] ?? BerthError;
  return new Class(e.code, message, e.metadata instanceof Metadata ? e.metadata : undefined, { cause: error });
}

/** The task stopped before it reached the status being waited for; `task` says why (its reason and its containers'). */
export class TaskStoppedError extends Error {
  override name = 'TaskStoppedError';
  constructor(
    readonly task: Task,
    readonly awaited: TaskStatus,
  ) {
    super(`task ${task.definition?.id ?? ''} stopped before it was ${TaskStatus[awaited]}: ${describeStop(task)}`);
  }
}

/** The task did not reach the status in time; `task` is how it was last seen (its reason says what it waits for). */
export class TaskWaitTimeoutError extends Error {
  override name = 'TaskWaitTimeoutError';
  constructor(
    readonly taskId: string,
    readonly awaited: TaskStatus,
    readonly timeoutMs: number,
    readonly task: Task | undefined,
  ) {
    super(
      `task ${taskId} was not ${TaskStatus[awaited]} within ${timeoutMs} ms` +
        (task ? `: it is ${TaskStatus[task.knownStatus]}${task.reason ? ` (${task.reason})` : ''}` : ': the agent does not have it'),
    );
  }
}

/** The task was removed from the agent (cleaned up) while it was being waited for. */
export class TaskRemovedError extends Error {
  override name = 'TaskRemovedError';
  constructor(
    readonly taskId: string,
    readonly awaited: TaskStatus,
  ) {
    super(`task ${taskId} was removed from the agent before it was ${TaskStatus[awaited]}`);
  }
}

function describeStop(task: Task): string {
  const containers = task.containers.filter((c) => c.reason || c.exitCode !== undefined).map((c) => `${c.name}: ${c.reason || `exit code ${c.exitCode}`}`);
  return [task.reason || 'no reason given', ...containers].join('; ');
}
