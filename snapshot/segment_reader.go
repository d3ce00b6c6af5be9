package snapshot

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// SegmentReader serves the part of a pchannel below its checkpoint from the
// Arrow segment files the checkpoint's manifest names, never by listing
// (docs/protocol.md "Flush, truncation, GC" rule 1). It implements
// segmentlog.SegmentReader, so a Scanner reads segments, then the WAL from
// the checkpoint C on. Deliveries from segments carry the term of the batch
// they were flushed from, as WAL deliveries do. Pchannel-wide messages (no
// vchannel) are served only to readers that ask for every vchannel.
//
// A SegmentReader is safe for concurrent use; each iterator it opens is not.
type SegmentReader struct {
	store   objstore.Store
	timeout time.Duration
}

// NewSegmentReader returns a reader over store. getTimeout bounds one
// segment GET attempt (0 means 30 s); transient failures are retried until
// the caller's ctx ends.
func NewSegmentReader(store objstore.Store, getTimeout time.Duration) *SegmentReader {
	if getTimeout <= 0 {
		getTimeout = 30 * time.Second
	}
	return &SegmentReader{store: store, timeout: getTimeout}
}

var _ segmentlog.SegmentReader = (*SegmentReader)(nil)

// Open iterates, in ID order, the messages below cp.C with an ID ≥ from, of
// the given vchannels (all if empty), merging the vchannels' segments.
func (r *SegmentReader) Open(ctx context.Context, cp segmentlog.Checkpoint, from segmentlog.MessageID, vchannels []string) (segmentlog.SegmentIterator, error) {
	return r.open(ctx, cp.Segments, cp.C, from, vchannels)
}

// open merges the segments of refs below limit.
func (r *SegmentReader) open(ctx context.Context, refs []segmentlog.SegmentRef, limit uint64, from segmentlog.MessageID, vchannels []string) (*segmentIter, error) {
	want := make(map[string]bool, len(vchannels))
	for _, v := range vchannels {
		want[v] = true
	}
	byV := make(map[string][]segmentlog.SegmentRef)
	for _, ref := range refs {
		if len(want) > 0 && !want[ref.VChannel] {
			continue
		}
		if ref.LastOffset < from.Offset || ref.FirstOffset >= limit {
			continue
		}
		byV[ref.VChannel] = append(byV[ref.VChannel], ref)
	}
	it := &segmentIter{r: r, from: from, limit: limit}
	// Read-ahead outlives the call that starts it (Next's ctx); Close ends it.
	it.ctx, it.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, rs := range byV {
		slices.SortFunc(rs, func(a, b segmentlog.SegmentRef) int { return cmpUint(a.FirstOffset, b.FirstOffset) })
		s := &stream{refs: rs}
		if err := it.fill(ctx, s); err != nil {
			it.Close()
			return nil, err
		}
		if s.pos < len(s.rows) {
			it.heads = append(it.heads, s)
		}
	}
	heap.Init(&it.heads)
	return it, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// segmentIter merges one stream per vchannel by message ID.
type segmentIter struct {
	r      *SegmentReader
	from   segmentlog.MessageID
	limit  uint64
	heads  streamHeap
	last   segmentlog.MessageID
	any    bool
	ctx    context.Context // the read-ahead's, until Close
	cancel context.CancelFunc
}

// stream is one vchannel's segments, read one file at a time; the next
// file loads while the second half of the current one is delivered (a
// reader that takes a page and closes costs no extra GET).
type stream struct {
	refs []segmentlog.SegmentRef // not yet loaded, ascending
	next *segmentLoad            // refs' first, loading; nil if none
	rows []segmentlog.Delivery   // the current file
	pos  int
}

// segmentLoad is one segment file read and decoded in its own goroutine.
type segmentLoad struct {
	done chan struct{}
	rows []segmentlog.Delivery
	err  error
}

// startLoad starts loading s's next file, if any, on the iterator's
// read-ahead context.
func (it *segmentIter) startLoad(s *stream) {
	if s.next != nil || len(s.refs) == 0 {
		return
	}
	ref := s.refs[0]
	s.refs = s.refs[1:]
	l := &segmentLoad{done: make(chan struct{})}
	s.next = l
	go func() {
		defer close(l.done)
		l.rows, l.err = it.r.load(it.ctx, ref)
	}()
}

func (s *stream) head() segmentlog.MessageID { return s.rows[s.pos].ID }

// fill loads files until s has a row at or after the iterator's start, or
// runs out of files.
func (it *segmentIter) fill(ctx context.Context, s *stream) error {
	for s.pos >= len(s.rows) && (s.next != nil || len(s.refs) > 0) {
		it.startLoad(s)
		l := s.next
		select {
		case <-l.done:
		case <-ctx.Done():
			return ctx.Err() // the load goes on; the next call waits for it again
		}
		s.next = nil
		if l.err != nil {
			return l.err
		}
		rows := l.rows
		lo, _ := slices.BinarySearchFunc(rows, it.from, func(d segmentlog.Delivery, id segmentlog.MessageID) int {
			if d.ID.Less(id) {
				return -1
			}
			if id.Less(d.ID) {
				return 1
			}
			return 0
		})
		hi := len(rows)
		for hi > lo && rows[hi-1].ID.Offset >= it.limit {
			hi--
		}
		s.rows, s.pos = rows[:hi], lo
	}
	return nil
}

// Next returns the next message, or io.EOF after the last.
func (it *segmentIter) Next(ctx context.Context) (segmentlog.Delivery, error) {
	if len(it.heads) == 0 {
		return segmentlog.Delivery{}, io.EOF
	}
	s := it.heads[0]
	d := s.rows[s.pos]
	s.pos++
	if s.pos >= len(s.rows)/2 {
		it.startLoad(s)
	}
	if err := it.fill(ctx, s); err != nil {
		return segmentlog.Delivery{}, err
	}
	if s.pos < len(s.rows) {
		heap.Fix(&it.heads, 0)
	} else {
		heap.Pop(&it.heads)
	}
	if it.any && !it.last.Less(d.ID) {
		return segmentlog.Delivery{}, fmt.Errorf("%w: message %v after %v (overlapping segments in the manifest)", ErrCorrupt, d.ID, it.last)
	}
	it.last, it.any = d.ID, true
	return d, nil
}

// Close releases the iterator and stops its read-ahead.
func (it *segmentIter) Close() error {
	it.cancel()
	it.heads = nil
	return nil
}

// load reads and decodes one segment file.
func (r *SegmentReader) load(ctx context.Context, ref segmentlog.SegmentRef) ([]segmentlog.Delivery, error) {
	var obj objstore.Object
	err := retry(ctx, func(actx context.Context) error {
		var err error
		obj, err = r.store.Get(actx, ref.Key)
		return err
	}, r.timeout)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("segment %s: %w", ref.Key, ErrMissingSegment)
	}
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", ref.Key, err)
	}
	rows, err := decodeSegment(obj.Body, obj.Meta[crcMeta])
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", ref.Key, err)
	}
	return rows, nil
}

// streamHeap orders streams by their head message ID.
type streamHeap []*stream

func (h streamHeap) Len() int           { return len(h) }
func (h streamHeap) Less(i, j int) bool { return h[i].head().Less(h[j].head()) }
func (h streamHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *streamHeap) Push(x any)        { *h = append(*h, x.(*stream)) }
func (h *streamHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}
