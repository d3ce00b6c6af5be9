package api

import (
	"context"
	"net/http"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// RetentionIn is the body of PUT /v1/pchannels/{p}/retention and PUT
// /v1/vchannels/{v}/retention: the policy that replaces the current one.
// Both bounds left out (or zero) keep everything.
type RetentionIn struct {
	MaxAge   string `json:"max_age,omitempty"` // a Go duration: 1h, 30m
	MaxBytes int64  `json:"max_bytes,omitempty"`
}

// RetentionOut is a retention policy and what it holds now.
type RetentionOut struct {
	PChannel string `json:"pchannel"`
	VChannel string `json:"vchannel,omitempty"`
	MaxAge   string `json:"max_age,omitempty"`
	MaxBytes int64  `json:"max_bytes,omitempty"`
	// Earliest is the earliest readable position (id:OFFSET.INDEX).
	Earliest string `json:"earliest"`
	// BytesHeld is the bytes of the segment files at or above it (the WAL
	// not yet flushed is not counted).
	BytesHeld int64 `json:"bytes_held"`
}

func parseRetention(r *http.Request) (snapshot.Policy, error) {
	if err := noQuery(r); err != nil {
		return snapshot.Policy{}, err
	}
	var in RetentionIn
	if err := readJSON(r, &in, false); err != nil {
		return snapshot.Policy{}, err
	}
	var p snapshot.Policy
	if in.MaxAge != "" {
		d, err := time.ParseDuration(in.MaxAge)
		if err != nil || d < 0 {
			return p, errorf(http.StatusBadRequest, CodeMalformed, "max_age %q: want a non-negative Go duration such as 1h or 30m", in.MaxAge)
		}
		p.MaxAge = d
	}
	if in.MaxBytes < 0 {
		return p, errorf(http.StatusBadRequest, CodeMalformed, "max_bytes %d: want a number ≥ 0", in.MaxBytes)
	}
	p.MaxBytes = in.MaxBytes
	return p, nil
}

// pchannelRetention is the retention of pchannel p, whose checkpoint is cp.
func (s *Server) pchannelRetention(ctx context.Context, p string, cp segmentlog.Checkpoint) (RetentionOut, error) {
	pol, err := snapshot.ReadPolicy(ctx, s.store, s.sc.Layout, snapshot.PolicyPChannel, p)
	if err != nil {
		return RetentionOut{}, err
	}
	return retentionOf(pol, p, "", cp, segmentlog.MessageID{}), nil
}

func retentionOf(pol snapshot.Policy, pchannel, vchannel string, cp segmentlog.Checkpoint, vtrim segmentlog.MessageID) RetentionOut {
	h := snapshot.HeldBy(cp, vchannel, vtrim)
	out := RetentionOut{PChannel: pchannel, VChannel: vchannel, MaxBytes: pol.MaxBytes,
		Earliest: segmentlog.AtID(h.Earliest).String(), BytesHeld: h.Bytes}
	if pol.MaxAge > 0 {
		out.MaxAge = pol.MaxAge.String()
	}
	return out
}

// retentionOut shows policy p of pchannel (and vchannel, trimmed at
// vtrim) with what it holds now.
func (s *Server) retentionOut(ctx context.Context, p snapshot.Policy, pchannel, vchannel string, vtrim segmentlog.MessageID) (RetentionOut, error) {
	cp, _, err := segmentlog.ReadCheckpoint(ctx, s.store, s.sc.Layout, pchannel)
	if err != nil {
		return RetentionOut{}, err
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
