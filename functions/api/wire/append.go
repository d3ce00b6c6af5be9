package wire

import (
	"errors"
	"fmt"
	"math"
)

// Media types of an append body.
const (
	ContentTypeJSON  = "application/json"
	ContentTypeBatch = "application/x-cairn-batch" // segmentlog's binary batch encoding
)

// PreferAckRuns, in an append's Prefer header (RFC 7240), asks for the
// answer's acks as runs (AppendResponse.AckRuns) instead of one object per
// message: a batch of a producer counting up is then one run. A server
// that applies it says so in Preference-Applied; one that does not know
// it answers one ack per message, so a client reads whichever field is
// set.
const PreferAckRuns = "ack-runs"

// AppendRequest is the JSON body of POST /v1/pchannels/{p}/append.
type AppendRequest struct {
	Messages []MessageIn `json:"messages"`
	// ExpectedOffset, if set, makes the append conditional: the batch lands
	// at exactly this offset or nothing is written (412). See doc.go.
	ExpectedOffset *uint64 `json:"expected_offset,omitempty"`
}

// MessageIn is one message to append.
type MessageIn struct {
	VChannel   string            `json:"vchannel"`
	Type       string            `json:"type,omitempty"`    // data (default), insert or delete
	Payload    []byte            `json:"payload,omitempty"` // base64 in JSON
	Properties map[string]string `json:"properties,omitempty"`
	Key        *Key              `json:"key,omitempty"`
}

// Key is an idempotency key (segmentlog.IdemKey).
type Key struct {
	Producer string `json:"producer"`
	Epoch    uint64 `json:"epoch"`
	Seq      uint64 `json:"seq"`
}

// AppendResponse answers an append: one ack per message, in order, in
// Acks, or in AckRuns when the request preferred them (PreferAckRuns).
type AppendResponse struct {
	PChannel string   `json:"pchannel"`
	Term     uint64   `json:"term"`
	Acks     []Ack    `json:"acks,omitempty"`
	AckRuns  []AckRun `json:"ack_runs,omitempty"`
}

// AckRun is Count acks in a row: the i-th (from 0) landed at (Offset,
// Index+i) with timetick TimeTick+i, and every one of them is Duplicate or
// none is.
type AckRun struct {
	Offset    uint64 `json:"offset"`
	Index     uint32 `json:"index"`
	TimeTick  uint64 `json:"timetick,string"`
	Count     uint32 `json:"count"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// AckRunsOf groups acks into the fewest runs.
func AckRunsOf(acks []Ack) []AckRun {
	var runs []AckRun
	for _, a := range acks {
		if n := len(runs); n > 0 {
			r := &runs[n-1]
			if a.Offset == r.Offset && uint64(a.Index) == uint64(r.Index)+uint64(r.Count) &&
				r.TimeTick <= math.MaxUint64-uint64(r.Count) && a.TimeTick == r.TimeTick+uint64(r.Count) &&
				a.Duplicate == r.Duplicate && r.Count < math.MaxUint32 {
				r.Count++
				continue
			}
		}
		runs = append(runs, AckRun{Offset: a.Offset, Index: a.Index, TimeTick: a.TimeTick, Count: 1, Duplicate: a.Duplicate})
	}
	return runs
}

// ExpandAckRuns returns the n acks runs stand for, or an error wrapping
// ErrBadAckRuns when they do not stand for exactly n valid acks (an empty
// run, an index or timetick past its type's range).
func ExpandAckRuns(runs []AckRun, n int) ([]Ack, error) {
	total := 0
	for i, r := range runs {
		switch {
		case r.Count == 0:
			return nil, fmt.Errorf("%w: run %d is empty", ErrBadAckRuns, i)
		case uint64(r.Index)+uint64(r.Count)-1 > math.MaxUint32 || r.TimeTick > math.MaxUint64-uint64(r.Count-1):
			return nil, fmt.Errorf("%w: run %d passes the range of its index or timetick", ErrBadAckRuns, i)
		case uint64(r.Count) > uint64(n-total):
			return nil, fmt.Errorf("%w: more acks than the %d messages sent", ErrBadAckRuns, n)
		}
		total += int(r.Count)
	}
	if total != n {
		return nil, fmt.Errorf("%w: %d acks for %d messages", ErrBadAckRuns, total, n)
	}
	acks := make([]Ack, 0, n)
	for _, r := range runs {
		for i := range r.Count {
			acks = append(acks, Ack{Offset: r.Offset, Index: r.Index + i, TimeTick: r.TimeTick + uint64(i), Duplicate: r.Duplicate})
		}
	}
	return acks, nil
}

// ErrBadAckRuns: an answer's ack runs do not stand for the messages sent.
var ErrBadAckRuns = errors.New("wire: ack runs do not match the messages sent")

// Ack is where one message landed.
type Ack struct {
	Offset   uint64 `json:"offset"`
	Index    uint32 `json:"index"`
	TimeTick uint64 `json:"timetick,string"` // a string: timeticks pass 2^53
	// Duplicate: the idempotency key was acked before; the ack is the
	// first copy's.
	Duplicate bool `json:"duplicate,omitempty"`
}

// ReservedPropertyPrefix starts the property keys Cairn sets itself (such
// as segmentlog.BroadcastDeadlineProperty on a broadcast's copies): every
// write route (appends, transaction appends, broadcasts) refuses them, so
// that a reader can trust them.
const ReservedPropertyPrefix = "cairn."
