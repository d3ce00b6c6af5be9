package segmentlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// FindTail returns the first empty slot of pchannel p at or after from (the
// checkpoint, or any slot known to be filled). It gallops forward with
// HEADs, then bisects: O(log n) requests. Holes exist only within the last
// fence window, so the answer may lie up to W slots before a batch that is
// still landing; callers that need the exact frontier read forward from it.
// Transient failures are retried with per-attempt timeouts until ctx ends.
func FindTail(ctx context.Context, store objstore.Store, layout Layout, p string, from uint64, timeout time.Duration) (uint64, error) {
	exists := func(off uint64) (bool, error) {
		pauses := readBackoff.Start()
		for {
			actx, cancel := context.WithTimeout(ctx, timeout)
			_, err := store.Head(actx, layout.WAL(p, off))
			cancel()
			switch {
			case err == nil:
				return true, nil
			case errors.Is(err, objstore.ErrNotFound):
				return false, nil
			case ctx.Err() == nil && objstore.IsRetryable(err):
				if pauses.Wait(ctx) != nil {
					return false, ctx.Err()
				}
			default:
				return false, fmt.Errorf("find tail of %s at %d: %w", p, off, err)
			}
		}
	}
	lo, step := from, uint64(1)
	for {
		ok, err := exists(lo)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		from = lo + 1
		lo += step
		step *= 2
	}
	hi := lo
	for from < hi {
		mid := from + (hi-from)/2
		ok, err := exists(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			from = mid + 1
		} else {
			hi = mid
		}
	}
	return from, nil
}
