package segmentlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cairnlog/cairn/infra/backoff"
	"github.com/cairnlog/cairn/infra/objstore"
)

// slotResult is one WAL slot as read from the store.
type slotResult struct {
	offset  uint64
	batch   Batch
	size    int  // encoded bytes
	missing bool // no object at this slot (yet, or any more)
	err     error
	// summary, when set, stands for the batch's messages: the slot was
	// read with a HEAD (headSlot) and batch has no Messages.
	summary *foldSummary
}

// headSlot reads the slot at offset with a HEAD when its object carries a
// fold summary (foldMetaKey), and whole otherwise.
func headSlot(ctx context.Context, store objstore.Store, layout Layout, p string, offset uint64, timeout time.Duration) slotResult {
	key := layout.WAL(p, offset)
	pauses := readBackoff.Start()
	for {
		actx, cancel := context.WithTimeout(ctx, timeout)
		attrs, err := store.Head(actx, key)
		cancel()
		switch {
		case err == nil:
			term, terr := strconv.ParseUint(attrs.Meta["term"], 10, 64)
			sum, serr := parseSummary(attrs.Meta[foldMetaKey])
			if terr != nil || serr != nil {
				return readSlot(ctx, store, layout, p, offset, timeout)
			}
			return slotResult{offset: offset, summary: &sum, size: int(attrs.Size),
				batch: Batch{Kind: sum.kind, Term: term, Offset: offset, Nonce: sum.nonce}}
		case errors.Is(err, objstore.ErrNotFound):
			return slotResult{offset: offset, missing: true}
		case ctx.Err() != nil:
			return slotResult{offset: offset, err: fmt.Errorf("head %s: %w", key, ctx.Err())}
		case objstore.IsRetryable(err):
			if pauses.Wait(ctx) != nil {
				return slotResult{offset: offset, err: fmt.Errorf("head %s: %w", key, ctx.Err())}
			}
		default:
			return slotResult{offset: offset, err: fmt.Errorf("head %s: %w", key, err)}
		}
	}
}

// readSlot reads and decodes the batch at offset, retrying transient
// failures with per-attempt timeouts until ctx ends. A missing slot is
// reported as missing, not as an error. A batch that does not decode, or
// whose header names another offset, is an error wrapping ErrCorrupt.
func readSlot(ctx context.Context, store objstore.Store, layout Layout, p string, offset uint64, timeout time.Duration) slotResult {
	key := layout.WAL(p, offset)
	res := slotResult{offset: offset}
	pauses := readBackoff.Start()
	for {
		actx, cancel := context.WithTimeout(ctx, timeout)
		obj, err := store.Get(actx, key)
		cancel()
		switch {
		case err == nil:
			b, derr := DecodeBatch(obj.Body)
			if derr == nil && b.Offset != offset {
				derr = fmt.Errorf("%w: batch at slot %d says offset %d", ErrCorrupt, offset, b.Offset)
			}
			if derr != nil {
				res.err = fmt.Errorf("read %s: %w", key, derr)
				return res
			}
			res.batch, res.size = b, len(obj.Body)
			return res
		case errors.Is(err, objstore.ErrNotFound):
			res.missing = true
			return res
		case ctx.Err() != nil:
			res.err = fmt.Errorf("read %s: %w", key, ctx.Err())
			return res
		case objstore.IsRetryable(err):
			if pauses.Wait(ctx) != nil {
				res.err = fmt.Errorf("read %s: %w", key, ctx.Err())
				return res
			}
		default:
			res.err = fmt.Errorf("read %s: %w", key, err)
			return res
		}
	}
}

// prefetcher reads consecutive slots in order with bounded, adaptive
// read-ahead: the depth doubles after each slot found (up to max) and drops
// back to 1 at a missing slot, so catching up runs up to max GETs in
// parallel while waiting at the tail costs one GET per probe. Not safe for
// concurrent use.
type prefetcher struct {
	store   objstore.Store
	layout  Layout
	p       string
	timeout time.Duration
	max     int
	head    bool // read with headSlot: summaries where the objects carry them

	next    uint64 // the offset the next call to next returns
	depth   int
	pending []chan slotResult // futures for next, next+1, ...
	cancel  []context.CancelFunc
}

func newPrefetcher(store objstore.Store, layout Layout, p string, from uint64, maxAhead int, timeout time.Duration) *prefetcher {
	return &prefetcher{store: store, layout: layout, p: p, timeout: timeout, max: max(1, maxAhead), next: from, depth: 1}
}

// nextSlot returns the slot at f.next and advances past it unless it is
// missing (a missing slot is returned again on the next call, re-read).
func (f *prefetcher) nextSlot(ctx context.Context) slotResult {
	f.fill(ctx)
	var res slotResult
	select {
	case res = <-f.pending[0]:
	case <-ctx.Done():
		// The read goes on for the next call; this one gives up.
		return slotResult{offset: f.next, err: ctx.Err()}
	}
	f.cancel[0]()
	f.pending, f.cancel = f.pending[1:], f.cancel[1:]
	if res.missing || res.err != nil {
		// Whatever was read beyond a gap is re-read later.
		f.reset(res.offset)
		return res
	}
	f.next++
	f.depth = min(f.max, f.depth*2)
	return res
}

// skip passes over the slot at f.next without reading it (it was served
// from the cache), keeping the read-ahead beyond it.
func (f *prefetcher) skip() {
	if len(f.pending) > 0 {
		f.cancel[0]()
		f.pending, f.cancel = f.pending[1:], f.cancel[1:]
	}
	f.next++
}

// seek drops read-ahead and continues from offset.
func (f *prefetcher) seek(offset uint64) { f.reset(offset) }

func (f *prefetcher) reset(offset uint64) {
	for _, c := range f.cancel {
		c()
	}
	f.pending, f.cancel = nil, nil
	f.next, f.depth = offset, 1
}

// close stops all read-ahead.
func (f *prefetcher) close() { f.reset(f.next) }

func (f *prefetcher) fill(ctx context.Context) {
	for len(f.pending) < f.depth {
		off := f.next + uint64(len(f.pending))
		// Read-ahead outlives the call that started it (a caller may cancel
		// a per-call context once Next returns); reset and close stop it.
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		ch := make(chan slotResult, 1)
		read := readSlot
		if f.head {
			read = headSlot
		}
		go func() { ch <- read(fctx, f.store, f.layout, f.p, off, f.timeout) }()
		f.pending = append(f.pending, ch)
		f.cancel = append(f.cancel, cancel)
	}
}

// The pauses between retries of a store request (infra/backoff): reads of
// slots and the tail 5–500 ms, recovery's reads 5–200 ms, slot PUTs and
// their read-backs 2–100 ms (they race a lease deadline).
var (
	readBackoff    = backoff.Policy{Min: 5 * time.Millisecond, Max: 500 * time.Millisecond}
	recoverBackoff = backoff.Policy{Min: 5 * time.Millisecond, Max: 200 * time.Millisecond}
	putBackoff     = backoff.Policy{Min: 2 * time.Millisecond, Max: 100 * time.Millisecond}
)
