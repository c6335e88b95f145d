/**
 * The engine's error vocabulary. The server maps each class to one gRPC status code, in one place
 * (src/server/error-status.ts); nothing else inspects messages.
 */

export interface FieldViolation {
  /** Path of the offending field in the request, e.g. "task.containers[1].image". */
  field: string;
  description: string;
}

export class InvalidArgumentError extends Error {
  override readonly name = 'InvalidArgumentError';
  constructor(
    readonly violations: FieldViolation[],
    /** What was invalid, for the message: a task definition unless said otherwise. */
    readonly subject = 'invalid task definition',
  ) {
    super(violations.map((v) => `${v.field}: ${v.description}`).join('; '));
  }
}

export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
  constructor(
    readonly resource: string,
    readonly id: string,
  ) {
    super(`${resource} "${id}" not found`);
  }
}

export class AlreadyExistsError extends Error {
  override readonly name = 'AlreadyExistsError';
  constructor(
    readonly resource: string,
    readonly id: string,
    detail: string,
  ) {
    super(`${resource} "${id}" already exists ${detail}`);
  }
}

/** The task needs more than this host has, even with nothing else running. */
export class ResourceExhaustedError extends Error {
  override readonly name = 'ResourceExhaustedError';
  constructor(
    readonly taskId: string,
    readonly problems: string[],
  ) {
    super(`task "${taskId}" can never fit this host: ${problems.join('; ')}`);
  }
}

/** One thing a task asks for that this agent's config does not allow. */
export interface PermissionViolation {
  /** Path of the field in the request, e.g. "task.containers[0].privileged". */
  field: string;
  /** The config setting that would allow it, e.g. "security.allowPrivileged". */
  setting: string;
  description: string;
}

/** The task asks for something the agent's config does not allow (privileged, host paths, host network). */
export class PermissionDeniedError extends Error {
  override readonly name = 'PermissionDeniedError';
  constructor(readonly violations: PermissionViolation[]) {
    super(violations.map((v) => `${v.field}: ${v.description} (allowed only with ${v.setting}: true)`).join('; '));
  }
}

/** The request cannot be carried out in the current state (e.g. exec in a container that is not running). */
export class FailedPreconditionError extends Error {
  override readonly name = 'FailedPreconditionError';
  constructor(
    message: string,
    /** What the precondition is about, e.g. "task/web/container/app". */
    readonly subject = '',
    /** The kind of precondition (google.rpc.PreconditionFailure type). */
    readonly type = 'STATUS',
  ) {
    super(message);
  }
}

/** An operation did not finish in the time it was given. */
export class DeadlineExceededError extends Error {
  override readonly name = 'DeadlineExceededError';
}

/** The container runtime cannot be reached; try again later. */
export class UnavailableError extends Error {
  override readonly name = 'UnavailableError';
  constructor(readonly reason: string) {
    super(`the container runtime is unavailable: ${reason}`);
  }
}

/** The state store cannot be written (disk full, I/O error, read-only): work that needs a write must wait. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  constructor(readonly reason: string) {
    super(`the state store cannot be written: ${reason}`);
  }
}

/** A watcher asked for events older than the oldest one retained. */
export class SequenceExpiredError extends Error {
  override readonly name = 'SequenceExpiredError';
  constructor(
    readonly requested: number,
    readonly oldestRetained: number,
  ) {
    super(`sequence ${requested} is no longer retained; the oldest retained sequence is ${oldestRetained}`);
  }
}

/** A watcher asked for events from a sequence no event has reached yet. */
export class SequenceBeyondLatestError extends Error {
  override readonly name = 'SequenceBeyondLatestError';
  constructor(
    readonly requested: number,
    readonly latest: number,
  ) {
    super(`sequence ${requested} is beyond the latest sequence ${latest}; watch from at most ${latest + 1}`);
  }
}

/** A request asks for more than a configured limit allows (streams, execs, …). */
export class LimitExceededError extends Error {
  override readonly name = 'LimitExceededError';
  constructor(
    /** The config key of the limit, e.g. "limits.watchTaskIds". */
    readonly limit: string,
    readonly value: number,
    detail: string,
  ) {
    super(`${detail} (at most ${value}, config ${limit})`);
  }
}

/** A watcher fell too far behind the event log and was disconnected. */
export class WatcherTooSlowError extends Error {
  override readonly name = 'WatcherTooSlowError';
  constructor(
    readonly lastDelivered: number,
    readonly maxLag: number,
  ) {
    super(`the watcher fell more than ${maxLag} events behind and was disconnected; ` + `reconnect with from_sequence=${lastDelivered + 1}`);
  }
}
