import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import {
  AlreadyExistsError,
  InvalidArgumentError,
  DeadlineExceededError,
  LimitExceededError,
  SequenceBeyondLatestError,
  FailedPreconditionError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  SequenceExpiredError,
  StoreUnavailableError,
  UnavailableError,
  WatcherTooSlowError,
} from '../engine/errors.js';
import { BadRequest, ErrorInfo, PreconditionFailure, QuotaFailure } from '../gen/google/rpc/error_details.js';
import { Status } from '../gen/google/rpc/status.js';
import { reportInternalError } from '../internal-errors.js';

const DOMAIN = 'berth.agent.v1';
const TYPE_PREFIX = 'type.googleapis.com/';

type Detail = { typeUrl: string; value: Buffer };

function errorInfo(reason: string, metadata: Record<string, string>): Detail {
  return { typeUrl: `${TYPE_PREFIX}google.rpc.ErrorInfo`, value: Buffer.from(ErrorInfo.encode({ reason, domain: DOMAIN, metadata }).finish()) };
}

/** A grpc-js ServiceError carrying google.rpc.Status (with details) in grpc-status-details-bin. */
function serviceError(code: status, message: string, details: Detail[]): Partial<ServiceError> {
  const metadata = new Metadata();
  if (details.length > 0) {
    metadata.set('grpc-status-details-bin', Buffer.from(Status.encode({ code, message, details }).finish()));
  }
  return { code, details: message, metadata };
}

/**
 * Maps an engine error to a gRPC status: the one place where error classes meet status codes.
 * Unknown errors become INTERNAL without their internals.
 */
export function toServiceError(error: unknown): Partial<ServiceError> {
  if (error instanceof InvalidArgumentError) {
    const badRequest = Buffer.from(BadRequest.encode({ fieldViolations: error.violations }).finish());
    return serviceError(status.INVALID_ARGUMENT, `${error.subject}: ${error.message}`, [{ typeUrl: `${TYPE_PREFIX}google.rpc.BadRequest`, value: badRequest }]);
  }
  if (error instanceof PermissionDeniedError) {
    return serviceError(
      status.PERMISSION_DENIED,
      `not allowed on this agent: ${error.message}`,
      error.violations.map((v) => errorInfo('NOT_ALLOWED_BY_CONFIG', { field: v.field, setting: v.setting })),
    );
  }
  if (error instanceof FailedPreconditionError) {
    const failure = Buffer.from(PreconditionFailure.encode({ violations: [{ type: error.type, subject: error.subject, description: error.message }] }).finish());
    return serviceError(status.FAILED_PRECONDITION, error.message, [{ typeUrl: `${TYPE_PREFIX}google.rpc.PreconditionFailure`, value: failure }]);
  }
  if (error instanceof DeadlineExceededError) return serviceError(status.DEADLINE_EXCEEDED, error.message, [errorInfo('DEADLINE_EXCEEDED', {})]);
  if (error instanceof LimitExceededError) {
    const quota = Buffer.from(QuotaFailure.encode({ violations: [{ subject: error.limit, description: error.message }] }).finish());
    return serviceError(status.RESOURCE_EXHAUSTED, error.message, [
      { typeUrl: `${TYPE_PREFIX}google.rpc.QuotaFailure`, value: quota },
      errorInfo('LIMIT_EXCEEDED', { limit: error.limit, value: String(error.value) }),
    ]);
  }
  if (error instanceof SequenceBeyondLatestError) {
    return serviceError(status.OUT_OF_RANGE, error.message, [errorInfo('SEQUENCE_BEYOND_LATEST', { requested_sequence: String(error.requested), latest_sequence: String(error.latest) })]);
  }
  if (error instanceof NotFoundError) return serviceError(status.NOT_FOUND, error.message, [errorInfo('NOT_FOUND', { [error.resource]: error.id })]);
  if (error instanceof AlreadyExistsError) return serviceError(status.ALREADY_EXISTS, error.message, [errorInfo('ALREADY_EXISTS', { [error.resource]: error.id })]);
  if (error instanceof ResourceExhaustedError) {
    const quota = Buffer.from(QuotaFailure.encode({ violations: error.problems.map((description) => ({ subject: `task/${error.taskId}`, description })) }).finish());
    return serviceError(status.RESOURCE_EXHAUSTED, error.message, [{ typeUrl: `${TYPE_PREFIX}google.rpc.QuotaFailure`, value: quota }]);
  }
  if (error instanceof UnavailableError) return serviceError(status.UNAVAILABLE, error.message, [errorInfo('RUNTIME_UNAVAILABLE', { reason: error.reason })]);
  if (error instanceof StoreUnavailableError) return serviceError(status.UNAVAILABLE, error.message, [errorInfo('STATE_STORE_UNAVAILABLE', { reason: error.reason })]);
  if (error instanceof SequenceExpiredError) {
    return serviceError(status.OUT_OF_RANGE, error.message, [errorInfo('SEQUENCE_EXPIRED', { requested_sequence: String(error.requested), oldest_sequence: String(error.oldestRetained) })]);
  }
  if (error instanceof WatcherTooSlowError) {
    return serviceError(status.RESOURCE_EXHAUSTED, error.message, [errorInfo('WATCHER_TOO_SLOW', { resume_from_sequence: String(error.lastDelivered + 1) })]);
  }
  // What went wrong stays in the agent's log; the client gets the incident id to find it there.
  const incident = reportInternalError('request', error);
  return serviceError(status.INTERNAL, `internal error ${incident}: the agent's log has the details`, [errorInfo('INTERNAL', { incident })]);
}
