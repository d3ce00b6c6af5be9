package coordinator

import (
	"fmt"
	"slices"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// The registry decisions are pure functions of the current record (nil when
// there is none) and the deciding clock; Registry reads, decides and writes
// with a compare-and-swap, deciding again after a lost race. A decision that
// returns the record with the same Version needs no write.

// pickPChannel returns the pchannel of pchannels with the fewest active
// vchannels bound to it, the first in name order on a tie. pchannels must
// not be empty. Concurrent creates may pick the same one: the balance is
// by count, not exact.
func pickPChannel(pchannels []string, vchannels []VChannel) string {
	load := make(map[string]int, len(pchannels))
	for _, v := range vchannels {
		if v.State == VChannelActive {
			load[v.PChannel]++
		}
	}
	sorted := slices.Sorted(slices.Values(pchannels))
	best := sorted[0]
	for _, p := range sorted[1:] {
		if load[p] < load[best] {
			best = p
		}
	}
	return best
}

// decideCreate creates vchannel name bound to pchannel. want is the
// pchannel the caller named ("" when it let the registry choose; pchannel is
// then the registry's choice). An existing active record with a matching
// binding is returned unchanged: create is idempotent.
func decideCreate(cur *VChannel, name, want, pchannel string, now time.Time) (VChannel, error) {
	if cur == nil {
		return VChannel{Name: name, PChannel: pchannel, State: VChannelActive, CreatedAt: now, Version: 1}, nil
	}
	switch {
	case cur.State != VChannelActive:
		return VChannel{}, fmt.Errorf("%w: %s is %s (a name is never reused)", ErrVChannelDropped, name, cur.State)
	case want != "" && want != cur.PChannel:
		return VChannel{}, fmt.Errorf("%w: %s is bound to %s, not %s", ErrBindingConflict, name, cur.PChannel, want)
	}
	return *cur, nil
}

// decideLogCreate records where the create message landed, once.
func decideLogCreate(cur *VChannel, name string, mark WALMark) (VChannel, error) {
	if cur == nil {
		return VChannel{}, fmt.Errorf("%w: %s", ErrNoVChannel, name)
	}
	if cur.Created != nil {
		return *cur, nil
	}
	next := *cur
	next.Created = &mark
	next.Version++
	return next, nil
}

// decideDrop drops an active vchannel: state dropped, position done.
// Dropping a dropped (or reclaiming) vchannel changes nothing.
func decideDrop(cur *VChannel, name string, now time.Time) (VChannel, error) {
	if cur == nil {
		return VChannel{}, fmt.Errorf("%w: %s", ErrNoVChannel, name)
	}
	if cur.State != VChannelActive {
		return *cur, nil
	}
	next := *cur
	next.State = VChannelDropped
	next.DroppedAt = now
	next.Position.Done = true
	next.Version++
	return next, nil
}

// decideLogDrop records where the drop message landed, once.
func decideLogDrop(cur *VChannel, name string, mark WALMark) (VChannel, error) {
	if cur == nil {
		return VChannel{}, fmt.Errorf("%w: %s", ErrNoVChannel, name)
	}
	if cur.State == VChannelActive {
		return VChannel{}, fmt.Errorf("coordinator: drop message of %s logged while the vchannel is active", name)
	}
	if cur.Dropped != nil {
		return *cur, nil
	}
	next := *cur
	next.Dropped = &mark
	next.Version++
	return next, nil
}

// decideAdvance moves the flushed position of an active vchannel forward.
// A position at or below the current one changes nothing; once the
// vchannel is dropped (its position done) every update fails with
// ErrVChannelDropped, so a flusher that read the record before the drop
// cannot write a stale position back.
func decideAdvance(cur *VChannel, name string, pos Position) (VChannel, error) {
	if cur == nil {
		return VChannel{}, fmt.Errorf("%w: %s", ErrNoVChannel, name)
	}
	if cur.Position.Done || cur.State != VChannelActive {
		return VChannel{}, fmt.Errorf("%w: %s is %s; its position is done", ErrVChannelDropped, name, cur.State)
	}
	if pos.Done {
		return VChannel{}, fmt.Errorf("coordinator: advance %s: only a drop marks a position done", name)
	}
	if !cur.Position.ID.Less(pos.ID) {
		return *cur, nil
	}
	next := *cur
	next.Position = Position{ID: pos.ID, TimeTick: max(pos.TimeTick, cur.Position.TimeTick)}
	next.Version++
	return next, nil
}

// decidePin adds snapshot to the pins of an active vchannel (docs/protocol.md,
// "Snapshots" rule 1: a pin fails once the vchannel is dropped or being
// reclaimed). Pinning twice changes nothing.
func decidePin(cur *VChannel, name, snapshot string) (VChannel, error) {
	if cur == nil {
		return VChannel{}, fmt.Errorf("%w: %s", ErrNoVChannel, name)
	}
	if cur.State != VChannelActive {
		return VChannel{}, fmt.Errorf("%w: cannot pin %s (%s) for %s", ErrVChannelDropped, name, cur.State, snapshot)
	}
	i, found := slices.BinarySearch(cur.Pins, snapshot)
	if found {
		return *cur, nil
	}
	next := *cur
	next.Pins = slices.Insert(slices.Clone(cur.Pins), i, snapshot)
	next.Version++
	return next, nil
}

// decideUnpin removes snapshot from the pins, in any state. Removing a pin
// that is not there changes nothing.
func decideUnpin(cur *VChannel, name, snapshot string) (VChannel, error) {
	if cur == nil {
		return VChannel{}, fmt.Errorf("%w: %s", ErrNoVChannel, name)
	}
	i, found := slices.BinarySearch(cur.Pins, snapshot)
	if !found {
		return *cur, nil
	}
	next := *cur
	next.Pins = slices.Delete(slices.Clone(cur.Pins), i, i+1)
	if len(next.Pins) == 0 {
		next.Pins = nil
	}
	next.Version++
	return next, nil
}

// decideReclaim moves a dropped vchannel with no pins to reclaiming, after
// which GC may delete its data. It fails with ErrVChannelActive before the
// drop and with ErrPinned while snapshots pin it; reclaiming again changes
// nothing.
func decideReclaim(cur *VChannel, name string) (VChannel, error) {
	if cur == nil {
		return VChannel{}, fmt.Errorf("%w: %s", ErrNoVChannel, name)
	}
	switch {
	case cur.State == VChannelReclaiming:
		return *cur, nil
	case cur.State == VChannelActive:
		return VChannel{}, fmt.Errorf("%w: %s must be dropped before it is reclaimed", ErrVChannelActive, name)
	case len(cur.Pins) > 0:
		return VChannel{}, fmt.Errorf("%w: %s is pinned by %v", ErrPinned, name, cur.Pins)
	}
	next := *cur
	next.State = VChannelReclaiming
	next.Version++
	return next, nil
}

// markOf is the WALMark of an acked control message.
func markOf(a segmentlog.Ack) WALMark { return WALMark{ID: a.ID, TimeTick: a.TimeTick} }
