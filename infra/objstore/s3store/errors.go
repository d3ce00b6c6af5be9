package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/cairnlog/cairn/infra/objstore"
)

// transientCodes are S3 error codes worth sending again, beyond what the
// SDK's own retry rules recognise (5xx, throttling, broken connections).
var transientCodes = map[string]bool{
	"ConditionalRequestConflict": true, // 409: a concurrent conditional write to the key
	"OperationAborted":           true,
	"SlowDown":                   true,
	"InternalError":              true,
	"ServiceUnavailable":         true,
	"RequestTimeout":             true,
	"XMinioServerNotInitialized": true,
}

// sdkRetryables is the SDK's standard judgement of a retryable error.
var sdkRetryables = retry.IsErrorRetryables(retry.DefaultRetryables)

// classify maps an SDK error onto objstore's sentinels. on412 and on404 say
// what a 412 Precondition Failed and a 404 on the key mean for the calling
// operation (nil: nothing special). The result still wraps err, for the
// message and for errors.As. The caller's own cancellation and deadline are
// passed through (objstore.IsRetryable already treats a deadline as
// retryable).
func classify(err error, on412, on404 error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	status, code := statusOf(err), codeOf(err)
	switch {
	case on412 != nil && (status == 412 || code == "PreconditionFailed"):
		return fmt.Errorf("%w: %w", on412, err)
	case on404 != nil && (code == "NoSuchKey" || code == "NotFound" || (status == 404 && code == "")):
		return fmt.Errorf("%w: %w", on404, err)
	case isTransient(err, status, code):
		return fmt.Errorf("%w: %w", objstore.ErrTransient, err)
	}
	return err
}

func isTransient(err error, status int, code string) bool {
	var quota ratelimit.QuotaExceededError
	var netErr net.Error
	switch {
	case transientCodes[code]:
	case status == 408, status == 409, status == 429, status >= 500:
	case sdkRetryables.IsErrorRetryable(err) == aws.TrueTernary:
	case errors.As(err, &quota):
	case errors.As(err, &netErr):
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
	default:
		return false
	}
	return true
}

// statusOf returns the HTTP status of a failed request, 0 if none came back.
func statusOf(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// codeOf returns the S3 error code ("NoSuchKey", "PreconditionFailed", ...).
func codeOf(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
