package system

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// The pchannel operations the HTTP API serves beside appends — tail,
// status, flush, a page read, retention — with what they read and decide. They read
// through the store counted as component "api".

// Tail is where the next message of a pchannel goes.
type Tail struct {
	NextOffset uint64
	Term       uint64
	// Source: "writer", the ack frontier of this process's writer;
	// "store", the first empty slot probed from the store, which may sit
	// below a remote writer's frontier while its last PUTs land.
	Source string
}

// Tail finds the next offset of pchannel p: from the writer in this
// process, else by probing the store from max(lease tail hint,
// checkpoint). A pchannel never written fails wrapping
// coordinator.ErrNoLease.
func (s *System) Tail(ctx context.Context, p string) (Tail, error) {
	if f, term, ok := s.pool.Frontier(p); ok {
		return Tail{NextOffset: f, Term: term, Source: "writer"}, nil
	}
	lease, err := s.leases.Describe(ctx, p)
	if err != nil {
		return Tail{}, err
	}
	cp, _, err := s.apiCheckpoints.Read(ctx, p)
	if err != nil {
		return Tail{}, err
	}
	next, err := s.firstEmpty(ctx, p, max(lease.Tail, cp.C))
	if err != nil {
		return Tail{}, err
	}
	return Tail{NextOffset: next, Term: lease.Term, Source: "store"}, nil
}

// firstEmpty returns the first empty slot of p at or after from: it
// gallops forward with HEADs, then bisects (holes exist only in the last W
// slots, where PUTs may land out of order).
func (s *System) firstEmpty(ctx context.Context, p string, from uint64) (uint64, error) {
	return segmentlog.FindTail(ctx, s.api, s.cfg.Layout, p, from, s.cfg.LeaseRequestTimeout())
}

// PChannelStatus is one row of Status.
type PChannelStatus struct {
	Lease      coordinator.Lease
	Checkpoint segmentlog.Checkpoint
	Tail       uint64 // as Tail finds it, from the lease record's tail hint
	TailSource string // as Tail.Source
	Retention  Retained
}

// Status is every pchannel with a lease record: its lease, flush
// checkpoint, tail and retention policy.
func (s *System) Status(ctx context.Context) ([]PChannelStatus, error) {
	ls, err := s.leases.List(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]PChannelStatus, len(ls))
	var g errgroup.Group
	g.SetLimit(8)
	for i, l := range ls {
		g.Go(func() error {
			row := PChannelStatus{Lease: l}
			cp, _, err := s.apiCheckpoints.Read(ctx, l.PChannel)
			if err != nil {
				return err
			}
			row.Checkpoint = cp
			if f, _, ok := s.pool.Frontier(l.PChannel); ok {
				row.Tail, row.TailSource = f, "writer"
			} else if row.Tail, err = s.firstEmpty(ctx, l.PChannel, max(l.Tail, cp.C)); err != nil {
				// The lease's tail hint is only as fresh as its last renew
				// or release, and shared terms never write it: probe.
				return err
			} else {
				row.TailSource = "store"
			}
			pol, err := snapshot.ReadPolicy(ctx, s.api, s.cfg.Layout, snapshot.PolicyPChannel, l.PChannel)
			row.Retention = Retained{PChannel: l.PChannel, Policy: pol, Held: snapshot.HeldBy(cp, "", segmentlog.MessageID{})}
			rows[i] = row
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return rows, nil
}

// Flushed is what Flush did.
type Flushed struct {
	Rounds   int   // committed by this call
	Messages int64 // written to segments
	Segments int   // files written
	// Checkpoint is the offset below which the pchannel is in segments
	// after the call.
	Checkpoint uint64
}

// Flush flushes pchannel p to segments now (snapshot.Flusher.FlushNow).
func (s *System) Flush(ctx context.Context, p string) (Flushed, error) {
	f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: p, Layout: s.cfg.Layout, Now: s.cfg.Now, Logger: s.cfg.Logger,
		Positions: s.registry}, s.api)
	if err != nil {
		return Flushed{}, err
	}
	rounds, err := f.FlushNow(ctx)
	if err != nil {
		return Flushed{}, err
	}
	out := Flushed{Rounds: len(rounds)}
	for _, rd := range rounds {
		out.Messages += rd.Messages
		out.Segments += len(rd.Segments)
	}
	cp, _, err := s.apiCheckpoints.Read(ctx, p)
	out.Checkpoint = cp.C
	return out, err
}

// ReadRequest is one page read of a pchannel (Read).
type ReadRequest struct {
	// From is where the page starts; latest is resolved to the tail first,
	// so that the position after an empty page is concrete.
	From      segmentlog.Position
	VChannels []string // only these vchannels' messages; none: all
	Types     []segmentlog.MessageType
	// Trim and EarliestID are a vchannel read's own trim point and the
	// start of its messages (segmentlog.ScannerConfig).
	Trim, EarliestID segmentlog.MessageID
	Limits           segmentlog.PageLimits
}

// Read reads one page of pchannel p (segmentlog.Scanner.Page) through the
// pool's cache and tail and the segment reader, so that a read below the
// flush checkpoint comes from segments, then the WAL, with no gap. It
// returns the page and the position after it.
func (s *System) Read(ctx context.Context, p string, req ReadRequest) ([]segmentlog.Delivery, segmentlog.Position, error) {
	from := req.From
	if from.Kind == segmentlog.StartLatest {
		t, err := s.Tail(ctx, p)
		if err != nil {
			return nil, segmentlog.Position{}, err
		}
		from = segmentlog.AtID(segmentlog.MessageID{Offset: t.NextOffset})
	}
	sc, err := segmentlog.NewScanner(ctx, segmentlog.ScannerConfig{
		PChannel: p, Layout: s.cfg.Layout, From: from,
		VChannels: req.VChannels, Types: req.Types, Trim: req.Trim, EarliestID: req.EarliestID,
		Cache: s.pool.Cache(), Tail: s.pool.Tail(), NoWait: true, Segments: s.segs, Checkpoints: s.apiCheckpoints,
	}, s.api)
	if err != nil {
		return nil, segmentlog.Position{}, err
	}
	defer sc.Close()
	page, err := sc.Page(ctx, req.Limits)
	if err != nil {
		return nil, segmentlog.Position{}, err
	}
	return page, sc.Resume(), nil
}

// Retained is a retention policy with what it holds now.
type Retained struct {
	PChannel string
	VChannel string // "" for a pchannel's policy
	Policy   snapshot.Policy
	// Held is what the segment files hold above the trim points, and the
	// earliest readable ID.
	Held snapshot.Held
}

// SetPChannelRetention sets the retention policy of pchannel p.
func (s *System) SetPChannelRetention(ctx context.Context, p string, pol snapshot.Policy) (Retained, error) {
	if _, err := snapshot.SetPolicy(ctx, s.api, s.cfg.Layout, snapshot.PolicyPChannel, p, p, pol, s.cfg.Now()); err != nil {
		return Retained{}, err
	}
	return s.retained(ctx, pol, p, "", segmentlog.MessageID{})
}

// SetVChannelRetention sets the retention policy of vchannel v.
func (s *System) SetVChannelRetention(ctx context.Context, v coordinator.VChannel, pol snapshot.Policy) (Retained, error) {
	if _, err := snapshot.SetPolicy(ctx, s.api, s.cfg.Layout, snapshot.PolicyVChannel, v.Name, v.PChannel, pol, s.cfg.Now()); err != nil {
		return Retained{}, err
	}
	return s.retained(ctx, pol, v.PChannel, v.Name, v.Trim)
}

// VChannelRetention is the retention policy of vchannel v.
func (s *System) VChannelRetention(ctx context.Context, v coordinator.VChannel) (Retained, error) {
	pol, err := snapshot.ReadPolicy(ctx, s.api, s.cfg.Layout, snapshot.PolicyVChannel, v.Name)
	if err != nil {
		return Retained{}, err
	}
	return s.retained(ctx, pol, v.PChannel, v.Name, v.Trim)
}

// retained shows policy pol of pchannel (and vchannel, trimmed at vtrim)
// with what it holds now.
func (s *System) retained(ctx context.Context, pol snapshot.Policy, pchannel, vchannel string, vtrim segmentlog.MessageID) (Retained, error) {
	cp, _, err := s.apiCheckpoints.Read(ctx, pchannel)
	if err != nil {
		return Retained{}, err
	}
	return Retained{PChannel: pchannel, VChannel: vchannel, Policy: pol, Held: snapshot.HeldBy(cp, vchannel, vtrim)}, nil
}

// TrimPChannel trims pchannel p below before (snapshot.Trim) and returns
// its earliest readable ID. A point beyond p's tail fails with ErrInvalid,
// and one of a pchannel never written wrapping coordinator.ErrNoLease.
func (s *System) TrimPChannel(ctx context.Context, p string, before segmentlog.MessageID) (segmentlog.MessageID, error) {
	if err := s.checkTrimPoint(ctx, p, before); err != nil {
		return segmentlog.MessageID{}, err
	}
	cp, err := snapshot.Trim(ctx, s.api, s.cfg.Layout, p, before, s.cfg.Now())
	return cp.Trim, err
}

// TrimVChannel trims vchannel name below before through the registry
// (this process's reads see the point at once) and returns its record and
// its earliest readable ID: the higher of its trim point and its
// pchannel's. The point is checked as TrimPChannel's against the tail of
// the vchannel's pchannel; on every failure after the vchannel's record
// was read, that record is returned.
func (s *System) TrimVChannel(ctx context.Context, name string, before segmentlog.MessageID) (coordinator.VChannel, segmentlog.MessageID, error) {
	v, err := s.registry.Describe(ctx, name)
	if err != nil {
		return v, segmentlog.MessageID{}, err
	}
	if err := s.checkTrimPoint(ctx, v.PChannel, before); err != nil {
		return v, segmentlog.MessageID{}, err
	}
	trimmed, err := s.registry.Trim(ctx, name, before)
	if err != nil {
		return v, segmentlog.MessageID{}, err
	}
	v = trimmed
	s.NoteVChannel(v)
	cp, _, err := s.apiCheckpoints.Read(ctx, v.PChannel)
	if err != nil {
		return v, segmentlog.MessageID{}, err
	}
	if cp.Trim.Less(v.Trim) {
		return v, v.Trim, nil
	}
	return v, cp.Trim, nil
}

// checkTrimPoint refuses a trim point beyond the tail of pchannel p.
func (s *System) checkTrimPoint(ctx context.Context, p string, before segmentlog.MessageID) error {
	t, err := s.Tail(ctx, p)
	if err != nil {
		return err
	}
	if before.Offset > t.NextOffset {
		return fmt.Errorf("%w: before %s lies beyond the tail of pchannel %q (next offset %d)", ErrInvalid, segmentlog.AtID(before), p, t.NextOffset)
	}
	return nil
}
