package segmentlog

import "time"

// Defaults of the idempotency window D (docs/protocol.md, "Parameters"); the
// Writer's DedupWindow and DedupMaxKeys default to them.
const (
	DefaultDedupWindow  = 10 * time.Minute
	DefaultDedupMaxKeys = 100_000
)

// DedupFold rebuilds the idempotency window exactly as the Writer does in
// recovery: it starts from a checkpoint's Dedup snapshot and folds every
// keyed message the reading rule delivers, evicting by age and count with
// the same code. The flusher uses it to write the window "as of the new
// checkpoint" that the next Writer restores, so both always agree. maxAge
// and maxKeys must be the Writer's DedupWindow and DedupMaxKeys. Not safe
// for concurrent use.
type DedupFold struct {
	w *dedupWindow
}

// NewDedupFold starts from the entries of a checkpoint (oldest first).
// maxKeys < 1 means DefaultDedupMaxKeys.
func NewDedupFold(maxAge time.Duration, maxKeys int, from []DedupEntry, now time.Time) *DedupFold {
	if maxKeys < 1 {
		maxKeys = DefaultDedupMaxKeys
	}
	w := newDedupWindow(maxAge, maxKeys)
	w.restore(from, now)
	return &DedupFold{w: w}
}

// Add folds one delivered message with idempotency key key, acked at id with
// tick. A key already in the window keeps its first ID. A zero key is
// ignored.
func (f *DedupFold) Add(key IdemKey, id MessageID, tick uint64, now time.Time) {
	if key.IsZero() {
		return
	}
	f.w.commit(key, id, tick, now)
}

// Entries returns the window, oldest first: a checkpoint's Dedup.
func (f *DedupFold) Entries() []DedupEntry { return f.w.snapshot() }
