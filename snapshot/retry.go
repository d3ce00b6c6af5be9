package snapshot

import (
	"context"
	"time"

	"github.com/cairnlog/cairn/infra/backoff"
	"github.com/cairnlog/cairn/infra/objstore"
)

// storeBackoff is the pause between retries of a store request, and
// between the rounds of a CAS update: 5 ms doubling up to 500 ms, jittered.
var storeBackoff = backoff.Policy{Min: 5 * time.Millisecond, Max: 500 * time.Millisecond}

// retry runs op with a per-attempt timeout, again after a backoff while it
// fails with a retryable error (objstore.IsRetryable), until ctx ends. Only
// for operations that are safe to repeat: reads, deletes, and writes whose
// resend cannot do harm (PutIfAbsent of identical bytes is checked by the
// caller).
func retry(ctx context.Context, op func(context.Context) error, timeout time.Duration) error {
	pauses := storeBackoff.Start()
	for {
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := op(actx)
		cancel()
		if err == nil || !objstore.IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		if pauses.Wait(ctx) != nil {
			return err
		}
	}
}
