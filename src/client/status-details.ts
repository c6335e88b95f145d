import type { Metadata } from '@grpc/grpc-js';
import { BadRequest, ErrorInfo, PreconditionFailure, QuotaFailure } from '../gen/google/rpc/error_details.js';
import { Status } from '../gen/google/rpc/status.js';

/** The google.rpc details berth puts in an error's status, decoded. */
export interface StatusDetails {
  badRequest?: BadRequest;
  /** The first ErrorInfo: its `reason` says which error this is (`SEQUENCE_EXPIRED`, `LIMIT_EXCEEDED`…). */
  errorInfo?: ErrorInfo;
  /** Every ErrorInfo, in order (PERMISSION_DENIED has one for each setting that refused). */
  errorInfos: ErrorInfo[];
  quotaFailure?: QuotaFailure;
  preconditionFailure?: PreconditionFailure;
}

/**
 * Reads the google.rpc.Status a server put in the trailers (`grpc-status-details-bin`). Details
 * of other types are skipped; a trailer that does not decode gives no details rather than an error.
 */
export function readStatusDetails(metadata: Metadata | undefined): StatusDetails {
  const raw = metadata?.get('grpc-status-details-bin')[0];
  if (!raw) return { errorInfos: [] };
  let decoded: Status;
  try {
    decoded = Status.decode(typeof raw === 'string' ? Buffer.from(raw, 'base64') : raw);
  } catch {
    return { errorInfos: [] };
  }
  const result: StatusDetails = { errorInfos: [] };
  for (const detail of decoded.details) {
    try {
      if (detail.typeUrl.endsWith('/google.rpc.BadRequest')) result.badRequest = BadRequest.decode(detail.value);
      if (detail.typeUrl.endsWith('/google.rpc.ErrorInfo')) result.errorInfos.push(ErrorInfo.decode(detail.value));
      if (detail.typeUrl.endsWith('/google.rpc.QuotaFailure')) result.quotaFailure = QuotaFailure.decode(detail.value);
      if (detail.typeUrl.endsWith('/google.rpc.PreconditionFailure')) result.preconditionFailure = PreconditionFailure.decode(detail.value);
    } catch {
      // A detail that does not decode is left out; the others are still read.
    }
  }
  result.errorInfo = result.errorInfos[0];
  return result;
}
