package segmentlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// CheckpointFormat is the version of the checkpoint record's JSON form that
// flushes write. Format 2 moved the idempotency window out of the record
// into the dedup state object its DedupState names; a format-1 record
// carries it inline (Dedup) and is still read. A binary that knows only
// format 1 refuses a format-2 record rather than recover without the
// window.
const CheckpointFormat = 2

// CheckpointFormatInlineDedup is the first checkpoint format: the
// idempotency window inline, in Dedup.
const CheckpointFormatInlineDedup = 1

// KnownCheckpointFormat reports whether this binary reads checkpoint
// records of format f.
func KnownCheckpointFormat(f int) bool {
	return f == CheckpointFormat || f == CheckpointFormatInlineDedup
}

// Checkpoint is the flush checkpoint record of a pchannel (docs/protocol.md,
// "Records"): every slot below C is flushed to segments. It moves only
// forward and is updated only by CAS. The zero value (no record yet) means
// nothing is flushed.
type Checkpoint struct {
	Format   int    `json:"format"`
	PChannel string `json:"pchannel"`
	// C: every slot below it is flushed; readers below it use segments.
	C uint64 `json:"c"`
	// MaxTerm is the highest term of any slot below C: it seeds the reading
	// rule "deliver only if term ≥ every earlier slot's term".
	MaxTerm uint64 `json:"max_term"`
	// TermChanges lists, ascending, the first slot of every higher term seen
	// below C. GC never deletes the W slots starting at each.
	TermChanges []TermChange `json:"term_changes,omitempty"`
	// LastTimeTick is the highest timetick delivered below C.
	LastTimeTick uint64 `json:"last_timetick"`
	// Dedup is the idempotency window as of C, inline: format 1 only.
	// Format 2 leaves it empty and names the window's object instead.
	Dedup []DedupEntry `json:"dedup,omitempty"`
	// DedupState (format 2) is the key of the dedup state object holding
	// the idempotency window as of C (Layout.DedupState); empty when the
	// window was empty. Only a takeover's recovery reads the object.
	DedupState string `json:"dedup_state,omitempty"`
	// Segments is the manifest: the only way to reach flushed data.
	Segments []SegmentRef `json:"segments,omitempty"`
	// Retired lists segment files that compaction took out of Segments
	// (their messages are in a merged file the manifest names instead). GC
	// keeps each one until RetiredAt plus its orphan age, for readers and
	// snapshots that still hold an older manifest, then drops the entry.
	// Only earlier binaries append to it (it grew with the flush rate);
	// retired files now go to retired list objects outside the record
	// (package snapshot, RetiredList). Every writer carries it over. Added
	// after format 1 shipped; see the package documentation, "Checkpoint
	// record".
	Retired []RetiredSegment `json:"retired,omitempty"`
	// Trim is the pchannel's trim point: no reader delivers a message with
	// an ID below it (a Scanner asked for one fails with a TruncatedError
	// naming Trim), and GC may delete what lies wholly below it. It only
	// moves up, by CAS (Checkpoint.Trimmed); every writer of the record
	// carries it over. It may lie above C: then the WAL between C and Trim
	// waits for the flusher like any other. Added after format 1 shipped;
	// see the package documentation, "Checkpoint record".
	Trim MessageID `json:"trim,omitzero"`
	// FlushID names the flush that wrote this version, so a flusher whose
	// CAS reply was lost can tell its own write from another's.
	FlushID string `json:"flush_id,omitempty"`
	// Version increments on every write.
	Version   uint64    `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
}

// RetiredSegment is a segment file compaction removed from the manifest
// at RetiredAt.
type RetiredSegment struct {
	Key       string    `json:"key"`
	RetiredAt time.Time `json:"retired_at"`
}

// TermChange records the first slot Offset of Term.
type TermChange struct {
	Offset uint64 `json:"offset"`
	Term   uint64 `json:"term"`
}

// DedupEntry is one remembered idempotency key and the ID it was acked at.
type DedupEntry struct {
	Key      IdemKey   `json:"key"`
	ID       MessageID `json:"id"`
	TimeTick uint64    `json:"timetick"`
}

// SegmentRef names one flushed Arrow segment of a vchannel.
type SegmentRef struct {
	VChannel    string `json:"vchannel"`
	Key         string `json:"key"`
	FirstOffset uint64 `json:"first_offset"`
	LastOffset  uint64 `json:"last_offset"`
	Messages    int64  `json:"messages"`
	Bytes       int64  `json:"bytes"`
}

// MessageID is the position of a message: its batch's offset in the
// pchannel and its index in the batch. IDs are totally ordered.
type MessageID struct {
	Offset uint64 `json:"offset"`
	Index  uint32 `json:"index"`
}

// Less orders IDs.
func (a MessageID) Less(b MessageID) bool {
	return a.Offset < b.Offset || a.Offset == b.Offset && a.Index < b.Index
}

func (a MessageID) String() string { return fmt.Sprintf("%d.%d", a.Offset, a.Index) }

// ReadCheckpoint reads the checkpoint of pchannel p with its ETag. A missing
// record is the zero checkpoint and an empty ETag.
func ReadCheckpoint(ctx context.Context, store objstore.Store, layout Layout, p string) (Checkpoint, string, error) {
	obj, err := store.Get(ctx, layout.Checkpoint(p))
	if errors.Is(err, objstore.ErrNotFound) {
		return Checkpoint{Format: CheckpointFormat, PChannel: p}, "", nil
	}
	if err != nil {
		return Checkpoint{}, "", fmt.Errorf("read checkpoint %s: %w", p, err)
	}
	cp, err := decodeCheckpoint(obj.Body)
	if err != nil {
		return Checkpoint{}, "", fmt.Errorf("read checkpoint %s: %w", p, err)
	}
	return cp, obj.ETag, nil
}

// decodeCheckpoint parses a stored checkpoint record. Every error wraps
// ErrCorrupt: not JSON of a checkpoint, or another format.
func decodeCheckpoint(b []byte) (Checkpoint, error) {
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if !KnownCheckpointFormat(cp.Format) {
		return Checkpoint{}, fmt.Errorf("%w: unsupported format %d", ErrCorrupt, cp.Format)
	}
	return cp, nil
}
