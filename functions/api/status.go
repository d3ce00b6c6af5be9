package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api/wire"
)

func (s *Server) handleTail(r *http.Request) (wire.TailResponse, error) {
	p := r.PathValue("p")
	if err := s.configured(p); err != nil {
		return wire.TailResponse{}, err
	}
	if err := noQuery(r); err != nil {
		return wire.TailResponse{}, err
	}
	t, err := s.sys.Tail(r.Context(), p)
	if err != nil {
		return wire.TailResponse{}, neverWritten(p, err)
	}
	return wire.TailResponse{PChannel: p, NextOffset: t.NextOffset, Term: t.Term, Source: t.Source}, nil
}

// neverWritten answers 404 unknown_pchannel for err about pchannel p
// without a lease record (coordinator.ErrNoLease).
func neverWritten(p string, err error) error {
	if errors.Is(err, coordinator.ErrNoLease) {
		return errorf(http.StatusNotFound, wire.CodeUnknownPChannel, "pchannel %q has never been written", p)
	}
	return err
}

func (s *Server) handleSync(r *http.Request) (wire.SyncResponse, error) {
	p := r.PathValue("p")
	if err := s.configured(p); err != nil {
		return wire.SyncResponse{}, err
	}
	if err := noQuery(r); err != nil {
		return wire.SyncResponse{}, err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return wire.SyncResponse{}, err
	}
	if b := bytes.TrimSpace(body); len(b) > 0 && !bytes.Equal(b, []byte("{}")) {
		return wire.SyncResponse{}, errorf(http.StatusBadRequest, wire.CodeMalformed, "sync takes no body (or {})")
	}
	ctx := r.Context()
	if err := s.mustKnow(ctx, p); err != nil {
		return wire.SyncResponse{}, err
	}
	term, t, err := s.sys.Pool().Sync(ctx, p)
	return wire.SyncResponse{PChannel: p, Term: term, TimeTick: t}, err
}

func (s *Server) leaseOut(l coordinator.Lease) wire.LeaseOut {
	return wire.LeaseOut{
		PChannel: l.PChannel, Term: l.Term, Holder: l.Holder, Expires: l.Expires, Released: l.Released,
		Live:     !l.Released && s.sc.Now().Before(l.Expires),
		TailHint: l.Tail, AcquiredAt: l.AcquiredAt, Version: l.Version,
	}
}

// lease is a pchannel's lease record; 404 unknown_pchannel if it has none.
func (s *Server) lease(ctx context.Context, p string) (coordinator.Lease, error) {
	l, err := s.sys.Leases().Describe(ctx, p)
	if errors.Is(err, coordinator.ErrNoLease) {
		return l, errorf(http.StatusNotFound, wire.CodeUnknownPChannel, "pchannel %q has no lease record", p)
	}
	return l, err
}

func (s *Server) handleLeases(r *http.Request) (wire.LeasesResponse, error) {
	if err := noQuery(r); err != nil {
		return wire.LeasesResponse{}, err
	}
	ls, err := s.sys.Leases().List(r.Context())
	if err != nil {
		return wire.LeasesResponse{}, err
	}
	return wire.LeasesResponse{Leases: mapped(ls, s.leaseOut)}, nil
}

// handleStatus is the pchannel status table (system.System.Status).
func (s *Server) handleStatus(r *http.Request) (wire.StatusResponse, error) {
	if err := noQuery(r); err != nil {
		return wire.StatusResponse{}, err
	}
	rows, err := s.sys.Status(r.Context())
	if err != nil {
		return wire.StatusResponse{}, err
	}
	resp := wire.StatusResponse{PChannels: make([]wire.PChannelStatus, len(rows))}
	for i, row := range rows {
		resp.PChannels[i] = wire.PChannelStatus{LeaseOut: s.leaseOut(row.Lease), Checkpoint: row.Checkpoint.C,
			Tail: row.Tail, TailSource: row.TailSource,
			Retention: retentionOut(row.Retention)}
	}
	return resp, nil
}
