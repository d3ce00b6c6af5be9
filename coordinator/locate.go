package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// ErrNoHolder: Locate found no live lease holder for the vchannel's
// pchannel (it is moving, or no node is alive). Try again shortly.
var ErrNoHolder = errors.New("coordinator: pchannel has no live holder")

// Location is where a producer sends the appends of a vchannel. It is a
// plain value.
type Location struct {
	VChannel string
	PChannel string
	// Node is the lease holder: the node whose writer accepts appends now.
	Node string
	// Address is Node's session address; "" if the holder has no session
	// record (it is not a registered node).
	Address string
	// Term and Expires are the holder's lease term and expiry (coordinator
	// clock). A producer may cache the Location until an append fails.
	Term    uint64
	Expires time.Time
	// Assignment is the pchannel's assignment record: where it is going if
	// it is moving. Zero if there is none.
	Assignment Assignment
}

// Locate returns where to send appends for vchannel: its pchannel, the
// node holding the pchannel's lease and that node's address. It reads the
// vchannel, lease, assignment and session records (four GETs); producers
// cache the answer and locate again when an append fails. It fails with
// ErrNoVChannel, ErrVChannelDropped, or ErrNoHolder while no lease is live.
func (r *Registry) Locate(ctx context.Context, vchannel string) (Location, error) {
	v, err := r.Describe(ctx, vchannel)
	if err != nil {
		return Location{}, err
	}
	if v.State != VChannelActive {
		return Location{}, fmt.Errorf("coordinator: locate %s: %w (%s)", vchannel, ErrVChannelDropped, v.State)
	}
	loc := Location{VChannel: vchannel, PChannel: v.PChannel}
	a, err := describeRecord(ctx, r.rec, assignmentCodec(r.cfg.Layout), v.PChannel)
	if err != nil {
		return Location{}, fmt.Errorf("coordinator: locate %s: assignment of %s: %w", vchannel, v.PChannel, err)
	}
	if a != nil {
		loc.Assignment = *a
	}
	l, err := r.leases.Describe(ctx, v.PChannel)
	if err != nil && !errors.Is(err, ErrNoLease) {
		return Location{}, fmt.Errorf("coordinator: locate %s: %w", vchannel, err)
	}
	if err != nil || l.Released || r.cfg.Now().After(l.Expires) {
		return loc, fmt.Errorf("coordinator: locate %s: %w: %s (assignment: %s %s)",
			vchannel, ErrNoHolder, v.PChannel, loc.Assignment.State, loc.Assignment.Node)
	}
	loc.Node, loc.Term, loc.Expires = l.Holder, l.Term, l.Expires
	if segmentlog.ValidateName("node", l.Holder) == nil {
		s, err := describeRecord(ctx, r.rec, sessionCodec(r.cfg.Layout), l.Holder)
		if err != nil {
			return Location{}, fmt.Errorf("coordinator: locate %s: session of %s: %w", vchannel, l.Holder, err)
		}
		if s != nil && !s.Stopped {
			loc.Address = s.Address
		}
	}
	return loc, nil
}
