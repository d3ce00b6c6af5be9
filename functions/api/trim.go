package api

import (
	"net/http"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/segmentlog"
)

// trimPoint reads a trim request's body: its point, a message ID (the
// system checks it against the tail).
func trimPoint(r *http.Request) (segmentlog.MessageID, error) {
	req, err := jsonBody[wire.TrimRequest](r, false)
	if err != nil {
		return segmentlog.MessageID{}, err
	}
	pos, err := parsePosition(req.Before)
	if err != nil {
		return segmentlog.MessageID{}, err
	}
	if pos.Kind != segmentlog.StartAtID {
		return segmentlog.MessageID{}, errorf(http.StatusBadRequest, wire.CodeInvalid, "before %q: a trim point is a message ID, id:OFFSET.INDEX", req.Before)
	}
	return pos.ID, nil
}

func (s *Server) handlePChannelTrim(r *http.Request) (wire.TrimResponse, error) {
	p := r.PathValue("p")
	if err := validName("pchannel", p); err != nil {
		return wire.TrimResponse{}, err
	}
	ctx := r.Context()
	if err := s.mustKnow(ctx, p); err != nil {
		return wire.TrimResponse{}, err
	}
	before, err := trimPoint(r)
	if err != nil {
		return wire.TrimResponse{}, err
	}
	earliest, err := s.sys.TrimPChannel(ctx, p, before)
	if err != nil {
		return wire.TrimResponse{}, err
	}
	return wire.TrimResponse{PChannel: p, Earliest: segmentlog.AtID(earliest).String()}, nil
}

func (s *Server) handleVChannelTrim(r *http.Request) (wire.TrimResponse, error) {
	name := r.PathValue("v")
	if err := validName("vchannel", name); err != nil {
		return wire.TrimResponse{}, err
	}
	before, err := trimPoint(r)
	if err != nil {
		return wire.TrimResponse{}, err
	}
	v, earliest, err := s.sys.TrimVChannel(r.Context(), name, before)
	if err != nil {
		return wire.TrimResponse{}, neverWritten(v.PChannel, err)
	}
	return wire.TrimResponse{PChannel: v.PChannel, VChannel: name, Earliest: segmentlog.AtID(earliest).String()}, nil
}
