package segmentlog

// TermFilter applies docs/protocol.md "Reading" rules 1 and 2 for every reader
// (scanners, the flusher, recovery, broadcast checks): a batch is delivered
// only if its term is at least the highest term of every earlier slot, and
// fence, filler and tombstone batches are never delivered. Feed it every slot
// in offset order. The zero value starts with no earlier slots; seed Max
// from the checkpoint (or the slots before the start) otherwise. Not safe
// for concurrent use.
type TermFilter struct {
	Max uint64 // the highest term seen in an earlier slot
}

// Observe takes the batch of the next slot and reports whether it is
// delivered.
func (f *TermFilter) Observe(b *Batch) bool {
	if b.Kind == KindTombstone || b.Term < f.Max {
		return false // shrunk garbage, or a zombie's batch behind a newer term
	}
	f.Max = b.Term
	return b.Kind == KindData
}
