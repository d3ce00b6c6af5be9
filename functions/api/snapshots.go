package api

import (
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

func (s *Server) handleFlush(r *http.Request) (wire.FlushResponse, error) {
	p := r.PathValue("p")
	if err := s.configured(p); err != nil {
		return wire.FlushResponse{}, err
	}
	if _, err := jsonBody[struct{}](r, true); err != nil {
		return wire.FlushResponse{}, err
	}
	ctx := r.Context()
	if err := s.mustKnow(ctx, p); err != nil {
		return wire.FlushResponse{}, err
	}
	f, err := s.sys.Flush(ctx, p)
	return wire.FlushResponse{PChannel: p, Rounds: f.Rounds, Messages: f.Messages, Segments: f.Segments, Checkpoint: f.Checkpoint}, err
}

func (s *Server) handleSnapshotCreate(r *http.Request) (wire.SnapshotOut, error) {
	req, err := jsonBody[wire.SnapshotCreateRequest](r, false)
	if err != nil {
		return wire.SnapshotOut{}, err
	}
	snap, err := s.sys.CreateSnapshot(r.Context(), req.Name, req.VChannels)
	return snapshotOut(snap), err
}

func (s *Server) handleSnapshotList(r *http.Request) (wire.SnapshotsResponse, error) {
	if err := onlyQuery(r.URL.Query(), "vchannel"); err != nil {
		return wire.SnapshotsResponse{}, err
	}
	v := r.URL.Query().Get("vchannel")
	if v != "" {
		if err := validName("vchannel", v); err != nil {
			return wire.SnapshotsResponse{}, err
		}
	}
	snaps, err := s.sys.Snapshots().List(r.Context(), v)
	if err != nil {
		return wire.SnapshotsResponse{}, err
	}
	return wire.SnapshotsResponse{Snapshots: mapped(snaps, snapshotOut)}, nil
}

// handleSnapshotDrop drops a snapshot (system.System.DropSnapshot): 204,
// or 404 if there is none.
func (s *Server) handleSnapshotDrop(w http.ResponseWriter, r *http.Request) error {
	name, err := pathName(r, "name", "snapshot")
	if err != nil {
		return err
	}
	if err := s.sys.DropSnapshot(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
