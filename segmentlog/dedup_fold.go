package segmentlog

import (
	"context"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

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

// LoadDedupFold starts from the window of checkpoint cp: its dedup state
// object (format 2; one GET), or its inline Dedup (format 1). A state
// object that is gone fails with ErrDedupStateGone: the checkpoint moved on.
func LoadDedupFold(ctx context.Context, store objstore.Store, cp Checkpoint, maxAge time.Duration, maxKeys int, now time.Time) (*DedupFold, error) {
	f := NewDedupFold(maxAge, maxKeys, cp.Dedup, now)
	if cp.DedupState == "" {
		return f, nil
	}
	runs, err := readDedupState(ctx, store, cp.DedupState)
	if err != nil {
		return nil, err
	}
	f.w.restoreState(runs, now)
	return f, nil
}

// State encodes the window as a dedup state object; nil when it holds no
// key (a checkpoint then names no object).
func (f *DedupFold) State() []byte {
	if runs, _ := f.w.size(); runs == 0 {
		return nil
	}
	return encodeDedupState(f.w)
}

// DecodeDedupState checks that b is a dedup state object and returns its
// keys, oldest first, as a format-1 checkpoint would list them. Every
// error wraps ErrCorrupt.
func DecodeDedupState(b []byte) ([]DedupEntry, error) {
	runs, err := decodeDedupState(b)
	if err != nil {
		return nil, err
	}
	var out []DedupEntry
	for _, r := range runs {
		for s := r.run.seq0; s < r.run.seq0+uint64(r.run.n); s++ {
			id, tick := r.run.at(s)
			out = append(out, DedupEntry{Key: IdemKey{Producer: r.key.producer, Epoch: r.key.epoch, Seq: s}, ID: id, TimeTick: tick})
		}
	}
	return out, nil
}
