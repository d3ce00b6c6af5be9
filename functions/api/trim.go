package api

import (
	"net/http"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// trimPoint reads a trim request's body and checks its point against the
// tail of pchannel p.
func (s *Server) trimPoint(r *http.Request, p string) (segmentlog.MessageID, error) {
	if err := noQuery(r); err != nil {
		return segmentlog.MessageID{}, err
	}
	var req wire.TrimRequest
	if err := readJSON(r, &req, false); err != nil {
		return segmentlog.MessageID{}, err
	}
	pos, err := parsePosition(req.Before)
	if err != nil {
		return segmentlog.MessageID{}, err
	}
	if pos.Kind != segmentlog.StartAtID {
		return segmentlog.MessageID{}, errorf(http.StatusBadRequest, wire.CodeInvalid, "before %q: a trim point is a message ID, id:OFFSET.INDEX", req.Before)
	}
	t, err := s.tail(r.Context(), p)
	if err != nil {
		return segmentlog.MessageID{}, err
	}
	if pos.ID.Offset > t.NextOffset {
		return segmentlog.MessageID{}, errorf(http.StatusBadRequest, wire.CodeInvalid, "before %s lies beyond the tail of pchannel %q (next offset %d)", pos, p, t.NextOffset)
	}
	return pos.ID, nil
}

func (s *Server) handlePChannelTrim(w http.ResponseWriter, r *http.Request) error {
	p := r.PathValue("p")
	if err := validName("pchannel", p); err != nil {
		return err
	}
	ctx := r.Context()
	if err := s.mustKnow(ctx, p); err != nil {
		return err
	}
	before, err := s.trimPoint(r, p)
	if err != nil {
		return err
	}
	cp, err := snapshot.Trim(ctx, s.store, s.sc.Layout, p, before, s.sc.Now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.TrimResponse{PChannel: p, Earliest: segmentlog.AtID(cp.Trim).String()})
	return nil
}

func (s *Server) handleVChannelTrim(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("v")
	if err := validName("vchannel", name); err != nil {
		return err
	}
	ctx := r.Context()
	v, err := s.registry.Describe(ctx, name)
	if err != nil {
		return err
	}
	before, err := s.trimPoint(r, v.PChannel)
	if err != nil {
		return err
	}
	if v, err = s.registry.Trim(ctx, name, before); err != nil {
		return err
	}
	s.sys.NoteVChannel(v) // this process's reads see the point at once
	earliest, err := s.earliest(r, v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.TrimResponse{PChannel: v.PChannel, VChannel: name, Earliest: segmentlog.AtID(earliest).String()})
	return nil
}

// earliest is the earliest readable ID of vchannel v: the higher of its
// trim point and its pchannel's.
func (s *Server) earliest(r *http.Request, v coordinator.VChannel) (segmentlog.MessageID, error) {
	cp, _, err := s.checkpoints.Read(r.Context(), v.PChannel)
	if err != nil {
		return segmentlog.MessageID{}, err
	}
	if cp.Trim.Less(v.Trim) {
		return v.Trim, nil
	}
	return cp.Trim, nil
}
