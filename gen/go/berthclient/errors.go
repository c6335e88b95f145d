package berthclient

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// Details are the google.rpc details an agent's error carries, decoded. The agent attaches:
// BadRequest to INVALID_ARGUMENT (each bad field), QuotaFailure to RESOURCE_EXHAUSTED (the limit),
// PreconditionFailure to FAILED_PRECONDITION, and ErrorInfo to most others (its Reason says which
// error it is: SEQUENCE_EXPIRED, WATCHER_TOO_SLOW, LIMIT_EXCEEDED, RUNTIME_UNAVAILABLE, NOT_FOUND…).
type Details struct {
	BadRequest          *errdetails.BadRequest
	QuotaFailure        *errdetails.QuotaFailure
	PreconditionFailure *errdetails.PreconditionFailure
	// ErrorInfos in order; PERMISSION_DENIED has one for each setting that refused.
	ErrorInfos []*errdetails.ErrorInfo
}

// ErrorDetails decodes the details of an error a call returned (none for an error that is not a
// gRPC status).
func ErrorDetails(err error) Details {
	var d Details
	st, ok := status.FromError(err)
	if !ok || st == nil {
		return d
	}
	for _, detail := range st.Details() {
		switch v := detail.(type) {
		case *errdetails.BadRequest:
			d.BadRequest = v
		case *errdetails.QuotaFailure:
			d.QuotaFailure = v
		case *errdetails.PreconditionFailure:
			d.PreconditionFailure = v
		case *errdetails.ErrorInfo:
			d.ErrorInfos = append(d.ErrorInfos, v)
		}
	}
	return d
}

// ErrorReason is the Reason of the error's first ErrorInfo and its metadata
// (oldest_sequence, resume_from_sequence, limit…); "" when it has none.
func ErrorReason(err error) (string, map[string]string) {
	infos := ErrorDetails(err).ErrorInfos
	if len(infos) == 0 {
		return "", nil
	}
	return infos[0].GetReason(), infos[0].GetMetadata()
}
