// Package backoff is Cairn's one retry pause: an exponential curve with
// jitter (Policy, drawn by github.com/cenkalti/backoff/v5) and Sleep, the
// one wait that honours a context. Every retry loop of the WAL, the
// coordinator, the flusher, the object-store adapters and the SDK pauses
// through it, with the bounds that suit its requests.
//
// Concurrency: a Policy is a value, safe to share; the Pauses it starts
// belong to one loop. Sleep is safe for concurrent use.
//
// Example, a read retried while the store says it is worth it:
//
//	pauses := backoff.Policy{Min: 5 * time.Millisecond, Max: 500 * time.Millisecond}.Start()
//	for {
//		obj, err := store.Get(ctx, key)
//		if !objstore.IsRetryable(err) {
//			return obj, err
//		}
//		if werr := pauses.Wait(ctx); werr != nil {
//			return obj, err
//		}
//	}
package backoff
