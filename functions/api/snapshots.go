package api

import (
	"errors"
	"net/http"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/snapshot"
)

// Flush and snapshots (snapshot role).

func snapshotOut(s snapshot.Snapshot) wire.SnapshotOut {
	out := wire.SnapshotOut{
		Name: s.Name, State: string(s.State), VChannels: s.VChannels, Cuts: make([]wire.CutOut, len(s.Cuts)),
		TimeTick: s.TimeTick, Segments: len(s.Segments), Messages: s.Messages, Bytes: s.Bytes,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, Version: s.Version,
	}
	for i, c := range s.Cuts {
		out.Cuts[i] = wire.CutOut{PChannel: c.PChannel, Checkpoint: c.C, TimeTick: c.TimeTick}
	}
	if out.VChannels == nil {
		out.VChannels = []string{}
	}
	return out
}

func (s *Server) handleFlush(w http.ResponseWriter, r *http.Request) error {
	p := r.PathValue("p")
	if err := s.configured(p); err != nil {
		return err
	}
	if err := noQuery(r); err != nil {
		return err
	}
	var empty struct{}
	if err := readJSON(r, &empty, true); err != nil {
		return err
	}
	ctx := r.Context()
	if err := s.mustKnow(ctx, p); err != nil {
		return err
	}
	f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: p, Layout: s.sc.Layout, Now: s.sc.Now, Logger: s.log,
		Positions: s.registry}, s.store)
	if err != nil {
		return err
	}
	rounds, err := f.FlushNow(ctx)
	if err != nil {
		return err
	}
	resp := wire.FlushResponse{PChannel: p, Rounds: len(rounds)}
	for _, rd := range rounds {
		resp.Messages += rd.Messages
		resp.Segments += len(rd.Segments)
	}
	cp, _, err := s.checkpoints.Read(ctx, p)
	if err != nil {
		return err
	}
	resp.Checkpoint = cp.C
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) handleSnapshotCreate(w http.ResponseWriter, r *http.Request) error {
	if err := noQuery(r); err != nil {
		return err
	}
	var req wire.SnapshotCreateRequest
	if err := readJSON(r, &req, false); err != nil {
		return err
	}
	if err := validName("snapshot", req.Name); err != nil {
		return err
	}
	if len(req.VChannels) == 0 {
		return errorf(http.StatusBadRequest, wire.CodeInvalid, "a snapshot needs at least one vchannel")
	}
	for _, v := range req.VChannels {
		if err := validName("vchannel", v); err != nil {
			return err
		}
	}
	ctx := r.Context()
	// An unknown vchannel is refused before the snapshot's record is
	// written: a create that fails later leaves the name to a rollback.
	for _, v := range req.VChannels {
		if _, err := s.registry.Describe(ctx, v); err != nil {
			return err
		}
	}
	snap, err := s.snaps.Create(ctx, req.Name, req.VChannels)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, snapshotOut(snap))
	return nil
}

func (s *Server) handleSnapshotList(w http.ResponseWriter, r *http.Request) error {
	if err := onlyQuery(r, "vchannel"); err != nil {
		return err
	}
	v := r.URL.Query().Get("vchannel")
	if v != "" {
		if err := validName("vchannel", v); err != nil {
			return err
		}
	}
	snaps, err := s.snaps.List(r.Context(), v)
	if err != nil {
		return err
	}
	resp := wire.SnapshotsResponse{Snapshots: make([]wire.SnapshotOut, len(snaps))}
	for i, snap := range snaps {
		resp.Snapshots[i] = snapshotOut(snap)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// snapshotName reads and checks the {name} of a snapshot route.
func snapshotName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := validName("snapshot", name); err != nil {
		return "", err
	}
	return name, nil
}

func (s *Server) handleSnapshotDescribe(w http.ResponseWriter, r *http.Request) error {
	name, err := snapshotName(r)
	if err != nil {
		return err
	}
	if err := noQuery(r); err != nil {
		return err
	}
	snap, err := s.snaps.Describe(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, snapshotOut(snap))
	return nil
}

// handleSnapshotDrop drops a snapshot: 204, or 404 if there is none. Files
// that a restored vchannel uses stay.
func (s *Server) handleSnapshotDrop(w http.ResponseWriter, r *http.Request) error {
	name, err := snapshotName(r)
	if err != nil {
		return err
	}
	if err := noQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := s.snaps.Describe(ctx, name); err != nil {
		return err
	}
	if err := s.snaps.Drop(ctx, name); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
