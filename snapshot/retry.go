package snapshot

import (
	"context"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// retry runs op with a per-attempt timeout, again after a backoff while it
// fails with a retryable error (objstore.IsRetryable), until ctx ends. Only
// for operations that are safe to repeat: reads, deletes, and writes whose
// resend cannot do harm (PutIfAbsent of identical bytes is checked by the
// caller).
func retry(ctx context.Context, op func(context.Context) error, timeout time.Duration) error {
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := op(actx)
		cancel()
		if err == nil || !objstore.IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		if !sleep(ctx, backoff(attempt)) {
			return err
		}
	}
}

// backoff is the pause before retry attempt n: 5 ms doubling up to 500 ms.
func backoff(n int) time.Duration {
	d := 5 * time.Millisecond
	for i := 0; i < n && d < 500*time.Millisecond; i++ {
		d *= 2
	}
	return min(d, 500*time.Millisecond)
}

// sleep waits d or until ctx ends; it reports whether it waited fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
