package segmentlog

import (
	"context"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// Slot is one WAL slot as a SlotReader read it.
type Slot struct {
	Offset  uint64
	Batch   Batch // zero when Missing
	Size    int   // encoded bytes of the batch object
	Missing bool  // no object at this slot (yet, or any more)
}

// SlotReader reads consecutive slots of a pchannel in offset order, every
// kind of batch included (fence, filler, tombstone, garbage): it is for
// readers that apply the reading rule (TermFilter) themselves and need what
// the Scanner hides, such as the flusher, which records term changes and
// stops at the first empty slot. It shares the Scanner's read-ahead: up to
// readAhead GETs in parallel while slots are found, one at a time after an
// empty slot. Transient failures are retried with per-attempt timeouts
// until ctx ends; a batch that does not decode is an error wrapping
// ErrCorrupt. Not safe for concurrent use.
type SlotReader struct {
	pf *prefetcher
}

// NewSlotReader returns a reader positioned at slot from. readAhead ≤ 0
// means 16; timeout ≤ 0 means 1 s per GET attempt.
func NewSlotReader(store objstore.Store, layout Layout, pchannel string, from uint64, readAhead int, timeout time.Duration) *SlotReader {
	if readAhead <= 0 {
		readAhead = 16
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	return &SlotReader{pf: newPrefetcher(store, layout, pchannel, from, readAhead, timeout)}
}

// Next returns the slot at the reader's position and moves past it, unless
// the slot is missing: then the next call reads it again.
func (r *SlotReader) Next(ctx context.Context) (Slot, error) {
	res := r.pf.nextSlot(ctx)
	if res.err != nil {
		return Slot{Offset: res.offset}, res.err
	}
	return Slot{Offset: res.offset, Batch: res.batch, Size: res.size, Missing: res.missing}, nil
}

// Close stops read-ahead. The reader must not be used afterwards.
func (r *SlotReader) Close() { r.pf.close() }
