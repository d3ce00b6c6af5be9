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
	if err := noQuery(r); err != nil {
		return snapshot.Policy{}, err
	}
	var in wire.RetentionIn
	if err := readJSON(r, &in, false); err != nil {
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

// pchannelRetention is the retention of pchannel p, whose checkpoint is cp.
func (s *Server) pchannelRetention(ctx context.Context, p string, cp segmentlog.Checkpoint) (wire.RetentionOut, error) {
	pol, err := snapshot.ReadPolicy(ctx, s.store, s.sc.Layout, snapshot.PolicyPChannel, p)
	if err != nil {
		return wire.RetentionOut{}, err
	}
	return retentionOf(pol, p, "", cp, segmentlog.MessageID{}), nil
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
	cp, _, err := s.checkpoints.Read(ctx, pchannel)
	if err != nil {
		return wire.RetentionOut{}, err
	}
	return retentionOf(p, pchannel, vchannel, cp, vtrim), nil
}

func (s *Server) handlePChannelRetention(w http.ResponseWriter, r *http.Request) error {
	p := r.PathValue("p")
	if err := validName("pchannel", p); err != nil {
		return err
	}
	pol, err := parseRetention(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if err := s.mustKnow(ctx, p); err != nil {
		return err
	}
	if _, err := snapshot.SetPolicy(ctx, s.store, s.sc.Layout, snapshot.PolicyPChannel, p, p, pol, s.sc.Now()); err != nil {
		return err
	}
	out, err := s.retentionOut(ctx, pol, p, "", segmentlog.MessageID{})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleVChannelRetention(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("v")
	if err := validName("vchannel", name); err != nil {
		return err
	}
	pol, err := parseRetention(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := s.registry.Describe(ctx, name)
	if err != nil {
		return err
	}
	if _, err := snapshot.SetPolicy(ctx, s.store, s.sc.Layout, snapshot.PolicyVChannel, name, v.PChannel, pol, s.sc.Now()); err != nil {
		return err
	}
	out, err := s.retentionOut(ctx, pol, v.PChannel, name, v.Trim)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
