package segmentlog_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// The torture's oracle: what a pchannel must deliver, derived from the
// protocol's definition by reading every slot directly, without the
// product's reading rule (TermFilter), scanner or cache. The product's read
// paths are then compared against it, so a bug in the shared reading rule
// cannot make the writers, the readers and the checker agree with it.
//
// The definition (docs/protocol.md, Reading 1–2): walking the slots from
// offset 0, let max be the highest term of any earlier slot holding a
// batch; a data batch is delivered iff its term ≥ max; fence, filler and
// tombstone batches are never delivered (a tombstone carries no term that
// counts).

// oracleResult is the oracle's reading of slots [0, tail).
type oracleResult struct {
	delivered []sl.Delivery
	garbage   []uint64 // slots of lower-term batches behind a higher term
	// fences maps each term to the offset of its fence batch.
	fences map[uint64]uint64
}

// oracleRead reads slots [from, tail) one GET each and checks, as it goes,
// the slot invariants: no hole below the tail (I6), one nonce per term (I5),
// a lower-term batch only within FenceWindow slots of the term change
// that made it garbage (I5 over every slot: Fence 5 — no older writer has
// more than W PUTs outstanding past the fence), at most one fence per term,
// and no data of a term inside its own window (its first W slots). maxTerm
// seeds the walk (the checkpoint's max_term when from is the checkpoint).
func oracleRead(t *testing.T, store objstore.Store, layout sl.Layout, pch string, from, tail, maxTerm uint64) oracleResult {
	t.Helper()
	ctx := context.Background()
	res := oracleResult{fences: make(map[uint64]uint64)}
	nonces := make(map[uint64][16]byte)
	change := from // first slot of the current max term
	for off := from; off < tail; off++ {
		obj, err := store.Get(ctx, layout.WAL(pch, off))
		if errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("I6: slot %d below the tail %d is empty (a hole)", off, tail)
			continue
		}
		if err != nil {
			t.Fatalf("oracle: slot %d: %v", off, err)
		}
		b, err := sl.DecodeBatch(obj.Body)
		if err != nil {
			t.Errorf("oracle: slot %d: %v", off, err)
			continue
		}
		if b.Offset != off {
			t.Errorf("oracle: slot %d holds a batch written for slot %d", off, b.Offset)
		}
		if b.Kind == sl.KindTombstone {
			continue
		}
		if n, ok := nonces[b.Term]; ok && n != b.Nonce {
			t.Errorf("I5: term %d has two nonces (slot %d)", b.Term, off)
		}
		nonces[b.Term] = b.Nonce
		if b.Kind == sl.KindFence {
			if prev, ok := res.fences[b.Term]; ok {
				t.Errorf("I5: term %d has two fences, at %d and %d", b.Term, prev, off)
			}
			res.fences[b.Term] = off
		}
		switch {
		case b.Term < maxTerm:
			res.garbage = append(res.garbage, off)
			if off >= change+sl.FenceWindow {
				t.Errorf("I5: slot %d holds term %d, %d slots past term %d's first slot %d (more than W = %d)",
					off, b.Term, off-change, maxTerm, change, sl.FenceWindow)
			}
			continue
		case b.Term > maxTerm:
			maxTerm, change = b.Term, off
		}
		if b.Kind == sl.KindData && from == 0 && off < change+sl.FenceWindow {
			// Fence 3 and 5: a term's first W slots are its window
			// (a fence and fillers; the fence may have been lost to valid
			// older data, sliding the window); its data comes after.
			t.Errorf("I6: term %d wrote data at slot %d, inside its window from slot %d", b.Term, off, change)
		}
		if b.Kind != sl.KindData {
			continue
		}
		for i, m := range b.Messages {
			if !m.Type.ReadByDefault() {
				continue // what a scan with the default types leaves out
			}
			res.delivered = append(res.delivered, sl.Delivery{ID: sl.MessageID{Offset: off, Index: uint32(i)}, Term: b.Term, Message: m})
		}
	}
	return res
}

// lastSlot is the highest slot holding an object, found by probing from 0
// until 4·W slots in a row are empty (a broken writer may leave holes of up
// to W−1 slots); 0 with nothing written.
func lastSlot(t *testing.T, store objstore.Store, layout sl.Layout, pch string) uint64 {
	t.Helper()
	last, empty := uint64(0), 0
	for off := uint64(0); empty < 4*sl.FenceWindow; off++ {
		_, err := store.Head(context.Background(), layout.WAL(pch, off))
		switch {
		case err == nil:
			last, empty = off, 0
		case errors.Is(err, objstore.ErrNotFound):
			empty++
		default:
			t.Fatalf("oracle: slot %d: %v", off, err)
		}
	}
	return last
}

// sameAsOracle reports the first difference between a product read path's
// deliveries and the oracle's (nil if equal): same IDs, terms, ticks, keys
// and payloads, in the same order.
func sameAsOracle(got, want []sl.Delivery) error {
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Term != w.Term || g.TimeTick != w.TimeTick || g.Key != w.Key || string(g.Payload) != string(w.Payload) {
			return fmt.Errorf("message %d: read %v term %d key %+v %q, oracle has %v term %d key %+v %q", i, g.ID, g.Term, g.Key, g.Payload, w.ID, w.Term, w.Key, w.Payload)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("read %d messages, the oracle %d", len(got), len(want))
	}
	return nil
}
