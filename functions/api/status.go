package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/segmentlog"
	"golang.org/x/sync/errgroup"
)

func (s *Server) handleTail(w http.ResponseWriter, r *http.Request) error {
	p := r.PathValue("p")
	if err := s.configured(p); err != nil {
		return err
	}
	if err := noQuery(r); err != nil {
		return err
	}
	t, err := s.tail(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// tail finds the next offset of p: from the writer in this process, else by
// probing the store from max(lease tail hint, checkpoint). 404 for a
// pchannel never written.
func (s *Server) tail(ctx context.Context, p string) (wire.TailResponse, error) {
	if f, term, ok := s.pool.Frontier(p); ok {
		return wire.TailResponse{PChannel: p, NextOffset: f, Term: term, Source: "writer"}, nil
	}
	lease, err := s.leases.Describe(ctx, p)
	if errors.Is(err, coordinator.ErrNoLease) {
		return wire.TailResponse{}, errorf(http.StatusNotFound, wire.CodeUnknownPChannel, "pchannel %q has never been written", p)
	}
	if err != nil {
		return wire.TailResponse{}, err
	}
	cp, _, err := s.checkpoints.Read(ctx, p)
	if err != nil {
		return wire.TailResponse{}, err
	}
	next, err := s.firstEmpty(ctx, p, max(lease.Tail, cp.C))
	if err != nil {
		return wire.TailResponse{}, err
	}
	return wire.TailResponse{PChannel: p, NextOffset: next, Term: lease.Term, Source: "store"}, nil
}

// firstEmpty returns the first empty slot of p at or after from: it
// gallops forward with HEADs, then bisects (holes exist only in the last W
// slots, where PUTs may land out of order).
func (s *Server) firstEmpty(ctx context.Context, p string, from uint64) (uint64, error) {
	return segmentlog.FindTail(ctx, s.store, s.sc.Layout, p, from, s.sc.LeaseRequestTimeout())
}

func (s *Server) handleSync(w http.ResponseWriter, r *http.Request) error {
	p := r.PathValue("p")
	if err := s.configured(p); err != nil {
		return err
	}
	if err := noQuery(r); err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if b := bytes.TrimSpace(body); len(b) > 0 && !bytes.Equal(b, []byte("{}")) {
		return errorf(http.StatusBadRequest, wire.CodeMalformed, "sync takes no body (or {})")
	}
	ctx := r.Context()
	if err := s.mustKnow(ctx, p); err != nil {
		return err
	}
	term, t, err := s.pool.Sync(ctx, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.SyncResponse{PChannel: p, Term: term, TimeTick: t})
	return nil
}

func (s *Server) leaseOut(l coordinator.Lease) wire.LeaseOut {
	return wire.LeaseOut{
		PChannel: l.PChannel, Term: l.Term, Holder: l.Holder, Expires: l.Expires, Released: l.Released,
		Live:     !l.Released && s.sc.Now().Before(l.Expires),
		TailHint: l.Tail, AcquiredAt: l.AcquiredAt, Version: l.Version,
	}
}

func (s *Server) handleLease(w http.ResponseWriter, r *http.Request) error {
	p := r.PathValue("p")
	if err := validName("pchannel", p); err != nil {
		return err
	}
	if err := noQuery(r); err != nil {
		return err
	}
	l, err := s.leases.Describe(r.Context(), p)
	if errors.Is(err, coordinator.ErrNoLease) {
		return errorf(http.StatusNotFound, wire.CodeUnknownPChannel, "pchannel %q has no lease record", p)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.leaseOut(l))
	return nil
}

func (s *Server) handleLeases(w http.ResponseWriter, r *http.Request) error {
	if err := noQuery(r); err != nil {
		return err
	}
	ls, err := s.leases.List(r.Context())
	if err != nil {
		return err
	}
	resp := wire.LeasesResponse{Leases: make([]wire.LeaseOut, len(ls))}
	for i, l := range ls {
		resp.Leases[i] = s.leaseOut(l)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// handleStatus is the pchannel status table: every pchannel with a lease
// record, its holder, term, tail (the writer's frontier if this process
// writes it, else the first empty slot probed from the store) and flush
// checkpoint.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) error {
	if err := noQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	ls, err := s.leases.List(ctx)
	if err != nil {
		return err
	}
	rows := make([]wire.PChannelStatus, len(ls))
	var g errgroup.Group
	g.SetLimit(8)
	for i, l := range ls {
		g.Go(func() error {
			row := wire.PChannelStatus{LeaseOut: s.leaseOut(l)}
			cp, _, err := s.checkpoints.Read(ctx, l.PChannel)
			if err != nil {
				return err
			}
			row.Checkpoint = cp.C
			if f, _, ok := s.pool.Frontier(l.PChannel); ok {
				row.Tail, row.TailSource = f, "writer"
			} else if row.Tail, err = s.firstEmpty(ctx, l.PChannel, max(l.Tail, cp.C)); err != nil {
				// The lease's tail hint is only as fresh as its last renew
				// or release, and shared terms never write it: probe.
				return err
			} else {
				row.TailSource = "store"
			}
			row.Retention, err = s.pchannelRetention(ctx, l.PChannel, cp)
			rows[i] = row
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.StatusResponse{PChannels: rows})
	return nil
}

// noQuery refuses query parameters on routes that take none.
func noQuery(r *http.Request) error {
	if r.URL.RawQuery != "" {
		return errorf(http.StatusBadRequest, wire.CodeMalformed, "%s takes no query parameters", r.URL.Path)
	}
	return nil
}
