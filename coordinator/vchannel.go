package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// Sentinel errors of the vchannel registry. Callers test with errors.Is.
var (
	// ErrNoVChannel: there is no vchannel of that name.
	ErrNoVChannel = errors.New("coordinator: no such vchannel")
	// ErrBindingConflict: Create named a vchannel that exists bound to
	// another pchannel. Nothing was written.
	ErrBindingConflict = errors.New("coordinator: vchannel exists with another binding")
	// ErrVChannelDropped: the vchannel is dropped or being reclaimed. It
	// cannot be created again (names are never reused), pinned, located or
	// have its position moved.
	ErrVChannelDropped = errors.New("coordinator: vchannel dropped")
	// ErrVChannelActive: MarkReclaiming on a vchannel that is not dropped.
	ErrVChannelActive = errors.New("coordinator: vchannel not dropped")
	// ErrPinned: a reclaim decision on a vchannel that snapshots still pin
	// (Registry.MarkReclaiming reports it as false, not as an error).
	ErrPinned = errors.New("coordinator: vchannel pinned by a snapshot")
	// ErrUnknownPChannel: a pchannel that is not in the pchannel set.
	ErrUnknownPChannel = errors.New("coordinator: unknown pchannel")
)

// VChannelState is the lifecycle state of a vchannel. Records are never
// deleted: a dropped vchannel stays as a tombstone.
type VChannelState string

const (
	// VChannelActive: accepting messages.
	VChannelActive VChannelState = "active"
	// VChannelDropped: dropped; its position is done. Its data stays until
	// GC reclaims it, which waits for every pinning snapshot to unpin.
	VChannelDropped VChannelState = "dropped"
	// VChannelReclaiming: GC is deleting its data; no pin can be added.
	VChannelReclaiming VChannelState = "reclaiming"
)

func (s VChannelState) valid() bool {
	return s == VChannelActive || s == VChannelDropped || s == VChannelReclaiming
}

// WALMark is where a control message of the registry landed in the WAL. It
// is a plain value.
type WALMark struct {
	ID       segmentlog.MessageID `json:"id"`
	TimeTick uint64               `json:"timetick"`
}

// Position is the flushed position of one vchannel (docs/protocol.md, "Flush,
// truncation, GC" rule 7): every message of the vchannel below ID is in
// segments. Positions are per vchannel and never move the pchannel's
// checkpoint. It is a plain value.
type Position struct {
	ID       segmentlog.MessageID `json:"id"`
	TimeTick uint64               `json:"timetick"`
	// Done is set by the drop and never cleared: the WAL need not keep
	// anything for this vchannel any more, and no later position update
	// (a flusher that read the record before the drop) can write a stale
	// position back.
	Done bool `json:"done"`
}

// VChannel is the registry record of one vchannel, stored as JSON at
// {prefix}/meta/vchannels/{name}.json and changed only by CAS. A VChannel is
// a plain value; copies share the Pins slice, so treat it as read-only.
type VChannel struct {
	Name     string        `json:"name"`
	PChannel string        `json:"pchannel"` // the binding; never changes
	State    VChannelState `json:"state"`
	// CreatedAt is when the record was written (deciding clock).
	CreatedAt time.Time `json:"created_at"`
	// Created is where the create message landed; nil until it did.
	Created *WALMark `json:"created,omitempty"`
	// DroppedAt is when the drop was decided; zero while active.
	DroppedAt time.Time `json:"dropped_at,omitzero"`
	// Dropped is where the drop message landed; nil until it did.
	Dropped  *WALMark `json:"dropped,omitempty"`
	Position Position `json:"position"`
	// Trim is the vchannel's trim point (Registry.Trim): no read of the
	// vchannel delivers a message with an ID below it, and GC may retire
	// its segment files wholly below it. It only moves up. Added to
	// format 1: an older binary ignores it (and drops it when it rewrites
	// the record), which only makes trimmed messages readable again.
	Trim segmentlog.MessageID `json:"trim,omitzero"`
	// Pins are the snapshots that pin this vchannel's data, sorted.
	Pins []string `json:"pins,omitempty"`
	// Version increases by one on every write.
	Version uint64 `json:"version"`
}

// vchannelFormat is the only vchannel record format this code reads and
// writes; a change of meaning takes a new number.
const vchannelFormat = 1

type vchannelRecord struct {
	Format int `json:"format"`
	VChannel
}

func encodeVChannel(v VChannel) ([]byte, error) {
	v.CreatedAt = utc(v.CreatedAt)
	if !v.DroppedAt.IsZero() {
		v.DroppedAt = utc(v.DroppedAt)
	}
	return json.Marshal(vchannelRecord{Format: vchannelFormat, VChannel: v})
}

func decodeVChannel(name string, b []byte) (VChannel, error) {
	if err := checkFormat("vchannel", name, b, vchannelFormat); err != nil {
		return VChannel{}, err
	}
	var rec vchannelRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return VChannel{}, fmt.Errorf("%w: vchannel record of %s: %w", ErrCorrupt, name, err)
	}
	v := rec.VChannel
	switch {
	case v.Name != name:
		return VChannel{}, fmt.Errorf("%w: vchannel record of %s names vchannel %q", ErrCorrupt, name, v.Name)
	case !v.State.valid():
		return VChannel{}, fmt.Errorf("%w: vchannel record of %s: unknown state %q", ErrCorrupt, name, v.State)
	case segmentlog.ValidateName("pchannel", v.PChannel) != nil:
		return VChannel{}, fmt.Errorf("%w: vchannel record of %s: bad pchannel %q", ErrCorrupt, name, v.PChannel)
	}
	if err := checkTimes("vchannel", name, v.CreatedAt, v.DroppedAt); err != nil {
		return VChannel{}, err
	}
	return v, nil
}

func vchannelCodec(l segmentlog.Layout) codec[VChannel] {
	return codec[VChannel]{
		kind:    "vchannel",
		key:     func(v string) string { return vchannelKey(l, v) },
		prefix:  vchannelPrefix(l),
		encode:  encodeVChannel,
		decode:  decodeVChannel,
		version: func(v VChannel) uint64 { return v.Version },
	}
}
