package system

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/segmentlog"
)

// ErrNoHistory: a read asked for a position in the restored history of a
// vchannel that has none.
var ErrNoHistory = errors.New("system: no restored history")

// VChannelPage is one page of ReadVChannel.
type VChannelPage struct {
	Messages []segmentlog.Delivery
	// Restored: Messages are of the vchannel's restored history (IDs and
	// terms of the snapshot's source pchannel).
	Restored bool
	// NextRestored, if set, is the ID in the restored history to read on
	// from; else Next is the position among the vchannel's own messages.
	NextRestored *segmentlog.MessageID
	Next         segmentlog.Position
}

// ReadVChannel reads one page of vchannel v: its restored history first,
// if a restore job made v and no trim point of v dropped it (a trim point
// is an ID of v's own pchannel, and the history reads before all of
// those), then its own messages, from its create message on. from is a
// position among v's own messages (earliest and timetick reads begin with
// the history); fromRestored, if set, an ID in the history instead, which
// fails with ErrNoHistory if v has none and with a
// *segmentlog.TruncatedError if a trim dropped it. The live read fails
// wrapping coordinator.ErrNoLease if v's pchannel was never written. A
// vchannel whose data is being reclaimed (dropped) is not read: an error
// wrapping coordinator.ErrVChannelDropped.
func (s *System) ReadVChannel(ctx context.Context, v coordinator.VChannel, from segmentlog.Position, fromRestored *segmentlog.MessageID,
	types []segmentlog.MessageType, lim segmentlog.PageLimits) (VChannelPage, error) {
	if v.State == coordinator.VChannelReclaiming {
		return VChannelPage{}, fmt.Errorf("%w: vchannel %q was dropped and its data is being reclaimed", coordinator.ErrVChannelDropped, v.Name)
	}
	job, err := s.RestoredFrom(ctx, v)
	if err != nil {
		return VChannelPage{}, err
	}
	if fromRestored != nil && job == "" {
		return VChannelPage{}, fmt.Errorf("%w: vchannel %q has none", ErrNoHistory, v.Name)
	}
	if job != "" && v.Trim != (segmentlog.MessageID{}) {
		if fromRestored != nil {
			return VChannelPage{}, &segmentlog.TruncatedError{PChannel: v.PChannel, From: *fromRestored, Earliest: v.Trim}
		}
		job = ""
	}
	if job != "" {
		var start *segmentlog.MessageID
		var minTick uint64
		switch {
		case fromRestored != nil:
			start = fromRestored
		case from.Kind == segmentlog.StartEarliest:
			start = &segmentlog.MessageID{}
		case from.Kind == segmentlog.StartAtTimeTick:
			start, minTick = &segmentlog.MessageID{}, from.TimeTick
		}
		if start != nil {
			page, live, err := s.readRestored(ctx, job, v, *start, minTick, types, lim.Max, lim.MaxBytes)
			if err != nil {
				return VChannelPage{}, err
			}
			if len(page) > 0 {
				out := VChannelPage{Messages: page, Restored: true}
				if live != nil {
					out.Next = *live
				} else {
					last := page[len(page)-1].ID
					out.NextRestored = &segmentlog.MessageID{Offset: last.Offset, Index: last.Index + 1}
				}
				return out, nil
			}
			if minTick == 0 {
				// A concrete position (the history is exhausted), which the
				// page's next repeats when nothing of v's own is there yet.
				from = *live
			}
		}
	}
	written, err := s.Written(ctx, v.PChannel)
	if err != nil {
		return VChannelPage{}, err
	}
	if !written {
		return VChannelPage{}, fmt.Errorf("pchannel %s: %w", v.PChannel, coordinator.ErrNoLease)
	}
	req := ReadRequest{From: from, VChannels: []string{v.Name}, Types: types, Trim: v.Trim, Limits: lim}
	if v.Created != nil {
		// Earliest and timetick reads start at its create message (nothing
		// of v lands before it), or at the trim points above it.
		req.EarliestID = v.Created.ID
	}
	page, next, err := s.Read(ctx, v.PChannel, req)
	return VChannelPage{Messages: page, Next: next}, err
}
