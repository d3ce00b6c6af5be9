package api

import (
	"context"
	"net/http"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/segmentlog"
)

// The vchannel registry routes (coordinator role): create, list, describe,
// drop and locate. Create and drop append a control message to the
// vchannel's pchannel through this process's writer pool, like an append.

func vchannelOut(v coordinator.VChannel) wire.VChannelOut {
	out := wire.VChannelOut{
		Name: v.Name, PChannel: v.PChannel, State: string(v.State), CreatedAt: v.CreatedAt,
		Created: markOut(v.Created), Dropped: markOut(v.Dropped), Pins: v.Pins, Version: v.Version,
		Position: wire.PositionOut{Offset: v.Position.ID.Offset, Index: v.Position.ID.Index, TimeTick: v.Position.TimeTick, Done: v.Position.Done},
	}
	if !v.DroppedAt.IsZero() {
		t := v.DroppedAt
		out.DroppedAt = &t
	}
	if out.Pins == nil {
		out.Pins = []string{}
	}
	if v.Trim != (segmentlog.MessageID{}) {
		out.Trim = segmentlog.AtID(v.Trim).String()
	}
	return out
}

func markOut(m *coordinator.WALMark) *wire.MarkOut {
	if m == nil {
		return nil
	}
	return &wire.MarkOut{Offset: m.ID.Offset, Index: m.ID.Index, TimeTick: m.TimeTick}
}

func (s *Server) handleVChannelCreate(r *http.Request) (wire.VChannelOut, error) {
	req, err := jsonBody[wire.VChannelCreateRequest](r, false)
	if err != nil {
		return wire.VChannelOut{}, err
	}
	v, err := s.sys.CreateVChannel(r.Context(), req.Name, req.PChannel)
	return vchannelOut(v), err
}

func (s *Server) handleVChannelList(r *http.Request) (wire.VChannelsResponse, error) {
	if err := onlyQuery(r.URL.Query(), "pchannel", "state"); err != nil {
		return wire.VChannelsResponse{}, err
	}
	q := r.URL.Query()
	f := coordinator.VChannelFilter{PChannel: q.Get("pchannel"), State: coordinator.VChannelState(q.Get("state"))}
	if f.PChannel != "" {
		if err := validName("pchannel", f.PChannel); err != nil {
			return wire.VChannelsResponse{}, err
		}
	}
	switch f.State {
	case "", coordinator.VChannelActive, coordinator.VChannelDropped, coordinator.VChannelReclaiming:
	default:
		return wire.VChannelsResponse{}, errorf(http.StatusBadRequest, wire.CodeMalformed, "state %q: want active, dropped or reclaiming", f.State)
	}
	vs, err := s.sys.Registry().List(r.Context(), f)
	if err != nil {
		return wire.VChannelsResponse{}, err
	}
	return wire.VChannelsResponse{VChannels: mapped(vs, vchannelOut)}, nil
}

// describeVChannel is a vchannel's record with its retention.
func (s *Server) describeVChannel(ctx context.Context, name string) (wire.VChannelOut, error) {
	v, err := s.sys.Registry().Describe(ctx, name)
	if err != nil {
		return wire.VChannelOut{}, err
	}
	s.sys.NoteVChannel(v)
	out := vchannelOut(v)
	ret, err := s.sys.VChannelRetention(ctx, v)
	if err != nil {
		return wire.VChannelOut{}, err
	}
	rout := retentionOut(ret)
	out.Retention = &rout
	return out, nil
}

func locationOut(loc coordinator.Location) wire.LocationOut {
	return wire.LocationOut{
		VChannel: loc.VChannel, PChannel: loc.PChannel, Node: loc.Node, Address: loc.Address,
		Term: loc.Term, Expires: loc.Expires,
		Assignment: wire.AssignmentOut{State: string(loc.Assignment.State), Node: loc.Assignment.Node},
	}
}
