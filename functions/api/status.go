package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/segmentlog"
	"golang.org/x/sync/errgroup"
)

// TailResponse answers GET /v1/pchannels/{p}/tail.
type TailResponse struct {
	PChannel string `json:"pchannel"`
	// NextOffset is the first offset not known to be filled: the writer's
	// ack frontier when this process holds the lease ("writer"), else the
	// first empty slot found in the store ("store"), which may sit below a
	// remote writer's frontier while its last PUTs land.
	NextOffset uint64 `json:"next_offset"`
	Term       uint64 `json:"term"`
	Source     string `json:"source"`
}

// SyncResponse answers POST /v1/pchannels/{p}/sync.
type SyncResponse struct {
	PChannel string `json:"pchannel"`
	Term     uint64 `json:"term"`
	// TimeTick: every message appended later gets a larger timetick, and
	// every message with a smaller one is acknowledged.
	TimeTick uint64 `json:"timetick,string"`
}

// LeaseOut is a lease record as the API shows it (the nonce stays private).
type LeaseOut struct {
	PChannel   string    `json:"pchannel"`
	Term       uint64    `json:"term"`
	Holder     string    `json:"holder"`
	Expires    time.Time `json:"expires"`
	Released   bool      `json:"released"`
	Live       bool      `json:"live"` // neither released nor expired, by this server's clock
	TailHint   uint64    `json:"tail_hint"`
	AcquiredAt time.Time `json:"acquired_at"`
	Version    uint64    `json:"version"`
}

// LeasesResponse answers GET /v1/leases.
type LeasesResponse struct {
	Leases []LeaseOut `json:"leases"`
}

// PChannelStatus is one row of GET /v1/pchannels.
type PChannelStatus struct {
	LeaseOut
	// Tail is the writer's ack frontier if this process holds the lease
	// (TailSource "writer"), else the lease record's tail hint ("hint").
	Tail       uint64 `json:"tail"`
	TailSource string `json:"tail_source"`
	Checkpoint uint64 `json:"checkpoint"`
	// Retention: its policy, the earliest readable position and the bytes
	// its segment files hold.
	Retention RetentionOut `json:"retention"`
}

// StatusResponse answers GET /v1/pchannels.
type StatusResponse struct {
	PChannels []PChannelStatus `json:"pchannels"`
}

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
func (s *Server) tail(ctx context.Context, p string) (TailResponse, error) {
	if f, term, ok := s.pool.Frontier(p); ok {
		return TailResponse{PChannel: p, NextOffset: f, Term: term, Source: "writer"}, nil
	}
	lease, err := s.leases.Describe(ctx, p)
	if errors.Is(err, coordinator.ErrNoLease) {
		return TailResponse{}, errorf(http.StatusNotFound, CodeUnknownPChannel, "pchannel %q has never been written", p)
	}
	if err != nil {
		return TailResponse{}, err
	}
	cp, _, err := segmentlog.ReadCheckpoint(ctx, s.store, s.sc.Layout, p)
	if err != nil {
		return TailResponse{}, err
	}
	next, err := s.firstEmpty(ctx, p, max(lease.Tail, cp.C))
	if err != nil {
		return TailResponse{}, err
	}
	return TailResponse{PChannel: p, NextOffset: next, Term: lease.Term, Source: "store"}, nil
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
		return errorf(http.StatusBadRequest, CodeMalformed, "sync takes no body (or {})")
	}
	ctx := r.Context()
	if err := s.mustKnow(ctx, p); err != nil {
		return err
	}
	term, t, err := s.pool.Sync(ctx, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, SyncResponse{PChannel: p, Term: term, TimeTick: t})
	return nil
}

func (s *Server) leaseOut(l coordinator.Lease) LeaseOut {
	return LeaseOut{
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
		return errorf(http.StatusNotFound, CodeUnknownPChannel, "pchannel %q has no lease record", p)
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
	resp := LeasesResponse{Leases: make([]LeaseOut, len(ls))}
	for i, l := range ls {
		resp.Leases[i] = s.leaseOut(l)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// handleStatus is the pchannel status table: every pchannel with a lease
// record, its holder, term, tail and flush checkpoint.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) error {
	if err := noQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	ls, err := s.leases.List(ctx)
	if err != nil {
		return err
	}
	rows := make([]PChannelStatus, len(ls))
	var g errgroup.Group
	g.SetLimit(8)
	for i, l := range ls {
		g.Go(func() error {
			row := PChannelStatus{LeaseOut: s.leaseOut(l), Tail: l.Tail, TailSource: "hint"}
			if f, _, ok := s.pool.Frontier(l.PChannel); ok {
				row.Tail, row.TailSource = f, "writer"
			}
			cp, _, err := segmentlog.ReadCheckpoint(ctx, s.store, s.sc.Layout, l.PChannel)
			row.Checkpoint = cp.C
			if err == nil {
				row.Retention, err = s.pchannelRetention(ctx, l.PChannel, cp)
			}
			rows[i] = row
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, StatusResponse{PChannels: rows})
	return nil
}

// noQuery refuses query parameters on routes that take none.
func noQuery(r *http.Request) error {
	if r.URL.RawQuery != "" {
		return errorf(http.StatusBadRequest, CodeMalformed, "%s takes no query parameters", r.URL.Path)
	}
	return nil
}
