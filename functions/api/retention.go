package api

import (
	"net/http"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

func parseRetention(r *http.Request) (snapshot.Policy, error) {
	in, err := jsonBody[wire.RetentionIn](r, false)
	if err != nil {
		return snapshot.Policy{}, err
	}
	var p snapshot.Policy
	if in.MaxAge != "" {
		d, err := time.ParseDuration(in.MaxAge)
		if err != nil || d < 0 {
			return p, errorf(http.StatusBadRequest, wire.CodeMalformed, "max_age %q: want a non-negative Go duration such as 1h or 30m", in.MaxAge)
		}
		p.MaxAge = d
	}
	if in.MaxBytes < 0 {
		return p, errorf(http.StatusBadRequest, wire.CodeMalformed, "max_bytes %d: want a number ≥ 0", in.MaxBytes)
	}
	p.MaxBytes = in.MaxBytes
	return p, nil
}

func retentionOut(r system.Retained) wire.RetentionOut {
	out := wire.RetentionOut{PChannel: r.PChannel, VChannel: r.VChannel, MaxBytes: r.Policy.MaxBytes,
		Earliest: segmentlog.AtID(r.Held.Earliest).String(), BytesHeld: r.Held.Bytes}
	if r.Policy.MaxAge > 0 {
		out.MaxAge = r.Policy.MaxAge.String()
	}
	return out
}

func (s *Server) handlePChannelRetention(r *http.Request) (wire.RetentionOut, error) {
	p := r.PathValue("p")
	if err := validName("pchannel", p); err != nil {
		return wire.RetentionOut{}, err
	}
	pol, err := parseRetention(r)
	if err != nil {
		return wire.RetentionOut{}, err
	}
	ctx := r.Context()
	if err := s.mustKnow(ctx, p); err != nil {
		return wire.RetentionOut{}, err
	}
	ret, err := s.sys.SetPChannelRetention(ctx, p, pol)
	return retentionOut(ret), err
}

func (s *Server) handleVChannelRetention(r *http.Request) (wire.RetentionOut, error) {
	name := r.PathValue("v")
	if err := validName("vchannel", name); err != nil {
		return wire.RetentionOut{}, err
	}
	pol, err := parseRetention(r)
	if err != nil {
		return wire.RetentionOut{}, err
	}
	v, err := s.sys.Registry().Describe(r.Context(), name)
	if err != nil {
		return wire.RetentionOut{}, err
	}
	ret, err := s.sys.SetVChannelRetention(r.Context(), v, pol)
	return retentionOut(ret), err
}
