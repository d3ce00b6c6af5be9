package coordinator

import (
	"context"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// decideTrim moves the trim point of a vchannel up to before. A point at
// or below the current one changes nothing (idempotent, monotone). A
// vchannel being reclaimed takes no trim: its data is going anyway.
func decideTrim(cur *VChannel, name string, before segmentlog.MessageID) (VChannel, error) {
	if cur == nil {
		return VChannel{}, fmt.Errorf("%w: %s", ErrNoVChannel, name)
	}
	if cur.State == VChannelReclaiming {
		return VChannel{}, fmt.Errorf("%w: %s is %s", ErrVChannelDropped, name, cur.State)
	}
	if !cur.Trim.Less(before) {
		return *cur, nil
	}
	next := *cur
	next.Trim = before
	next.Version++
	return next, nil
}

// Trim moves the trim point of vchannel name up to before by CAS on its
// record (docs/protocol.md "Trim and retention" rule 2) and returns the
// record as stored. A point at or below the current one writes nothing.
func (r *Registry) Trim(ctx context.Context, name string, before segmentlog.MessageID) (VChannel, error) {
	v, err := r.update(ctx, name, func(cur *VChannel, _ time.Time) (VChannel, error) {
		return decideTrim(cur, name, before)
	})
	return v, wrapOp("trim", name, err)
}

// VChannelTrims returns the trim point of every vchannel bound to pchannel
// that has one (snapshot.TrimPoints, for GC).
func (r *Registry) VChannelTrims(ctx context.Context, pchannel string) (map[string]segmentlog.MessageID, error) {
	vs, err := r.List(ctx, VChannelFilter{PChannel: pchannel})
	if err != nil {
		return nil, err
	}
	out := make(map[string]segmentlog.MessageID)
	for _, v := range vs {
		if v.Trim != (segmentlog.MessageID{}) {
			out[v.Name] = v.Trim
		}
	}
	return out, nil
}

// Start returns where vchannel name's messages begin for a reader: its
// create message, or its trim point when higher (snapshot.VChannelStarts:
// a snapshot holds what a reader of the vchannel delivers).
func (r *Registry) Start(ctx context.Context, name string) (segmentlog.MessageID, error) {
	v, err := r.Describe(ctx, name)
	if err != nil {
		return segmentlog.MessageID{}, err
	}
	start := v.Trim
	if v.Created != nil && start.Less(v.Created.ID) {
		start = v.Created.ID
	}
	return start, nil
}
