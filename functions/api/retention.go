package api

import (
	"context"
	"net/http"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
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

func retentionOf(pol snapshot.Policy, pchannel, vchannel string, cp segmentlog.Checkpoint, vtrim segmentlog.MessageID) wire.RetentionOut {
	h := snapshot.HeldBy(cp, vchannel, vtrim)
	out := wire.RetentionOut{PChannel: pchannel, VChannel: vchannel, MaxBytes: pol.MaxBytes,
		Earliest: segmentlog.AtID(h.Earliest).String(), BytesHeld: h.Bytes}
	if pol.MaxAge > 0 {
		out.MaxAge = pol.MaxAge.String()
	}
	return out
}

// retentionOut shows policy p of pchannel (and vchannel, trimmed at
// vtrim) with what it holds now.
func (s *Server) retentionOut(ctx context.Context, p snapshot.Policy, pchannel, vchannel string, vtrim segmentlog.MessageID) (wire.RetentionOut, error) {
	cp, _, err := segmentlog.ReadCheckpoint(ctx, s.store, s.sc.Layout, pchannel)
	if err != nil {
		return wire.RetentionOut{}, err
	}
	return retentionOf(p, pchannel, vchannel, cp, vtrim), nil
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
	if _, err := snapshot.SetPolicy(ctx, s.store, s.sc.Layout, snapshot.PolicyPChannel, p, p, pol, s.sc.Now()); err != nil {
		return wire.RetentionOut{}, err
	}
	return s.retentionOut(ctx, pol, p, "", segmentlog.MessageID{})
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
	ctx := r.Context()
	v, err := s.registry.Describe(ctx, name)
	if err != nil {
		return wire.RetentionOut{}, err
	}
	if _, err := snapshot.SetPolicy(ctx, s.store, s.sc.Layout, snapshot.PolicyVChannel, name, v.PChannel, pol, s.sc.Now()); err != nil {
		return wire.RetentionOut{}, err
	}
	return s.retentionOut(ctx, pol, v.PChannel, name, v.Trim)
}
