package segmentlog

import "fmt"

// TruncatedError is the error of a read that starts, or has come to lie,
// below the earliest readable position of a pchannel or vchannel: a trim
// point (Checkpoint.Trim, or a vchannel's own). It matches ErrTruncated
// with errors.Is and carries the position to read from instead. A reader
// already at or past Earliest never meets it.
type TruncatedError struct {
	PChannel string
	From     MessageID // the position asked for (or reached)
	Earliest MessageID // the earliest readable position
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("scan %s from %v: position trimmed; the earliest readable position is id:%v", e.PChannel, e.From, e.Earliest)
}

// Is matches ErrTruncated.
func (e *TruncatedError) Is(target error) bool { return target == ErrTruncated }

// Trimmed returns cp with its trim point moved up to before (docs/protocol.md
// "Trim and retention" rule 1): every message with an ID below before is
// no longer readable. A point at or below the current one changes nothing
// (changed=false): trims are idempotent and monotone. The caller writes the
// result by CAS on the version it read.
func (cp Checkpoint) Trimmed(before MessageID) (next Checkpoint, changed bool) {
	if !cp.Trim.Less(before) {
		return cp, false
	}
	cp.Trim = before
	cp.Version++
	return cp, true
}

// floorOf is the highest of the trim points: the earliest readable ID.
func floorOf(ids ...MessageID) MessageID {
	var f MessageID
	for _, id := range ids {
		if f.Less(id) {
			f = id
		}
	}
	return f
}

// NextID is the ID right after id: the next index, or the first of the
// next offset after the last index a batch can have (MaxMessages−1). It is
// where a reader that handled id resumes.
func NextID(id MessageID) MessageID {
	if id.Index >= MaxMessages-1 {
		return MessageID{Offset: id.Offset + 1}
	}
	return MessageID{Offset: id.Offset, Index: id.Index + 1}
}
