import type { Metadata } from '@grpc/grpc-js';
import { BadRequest, ErrorInfo, QuotaFailure } from '../gen/google/rpc/error_details.js';
import { Status } from '../gen/google/rpc/status.js';

/** Reads the google.rpc.Status a server put in the trailers, for clients and tests. */
export function readStatusDetails(metadata: Metadata | undefined): { badRequest?: BadRequest; errorInfo?: ErrorInfo; quotaFailure?: QuotaFailure } {
  const raw = metadata?.get('grpc-status-details-bin')[0];
  if (!raw) return {};
  const decoded = Status.decode(typeof raw === 'string' ? Buffer.from(raw, 'base64') : raw);
  const result: { badRequest?: BadRequest; errorInfo?: ErrorInfo; quotaFailure?: QuotaFailure } = {};
  for (const detail of decoded.details) {
    if (detail.typeUrl.endsWith('google.rpc.BadRequest')) result.badRequest = BadRequest.decode(detail.value);
    if (detail.typeUrl.endsWith('google.rpc.ErrorInfo')) result.errorInfo = ErrorInfo.decode(detail.value);
    if (detail.typeUrl.endsWith('google.rpc.QuotaFailure')) result.quotaFailure = QuotaFailure.decode(detail.value);
  }
  return result;
}
