package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api/wire"
)

// Broadcasts (coordinator role): one message on several vchannels, a copy
// on each, as a coordinator.Broadcaster task that system.System.Broadcast
// runs (docs/http.md, "Broadcasts").

// Defaults of the broadcast route's wait.
const (
	// DefaultBroadcastWait is how long POST /v1/broadcasts runs a task
	// before it answers 202 with the task pending, when the body names no
	// wait. Capped, like every wait of the API, at Config.MaxWait.
	DefaultBroadcastWait = 10 * time.Second
)

func broadcastOut(b coordinator.Broadcast) wire.BroadcastOut {
	out := wire.BroadcastOut{ID: b.ID, State: string(b.State), Ack: string(b.Ack), Error: b.Error,
		CreatedAt: b.CreatedAt, Version: b.Version, Targets: make([]wire.BroadcastTargetOut, len(b.Targets))}
	if !b.FinishedAt.IsZero() {
		t := b.FinishedAt
		out.FinishedAt = &t
	}
	for i, t := range b.Targets {
		out.Targets[i] = wire.BroadcastTargetOut{VChannel: t.VChannel, PChannel: t.PChannel, Appended: markOut(t.Appended),
			Synced: t.Synced, Skipped: t.Skipped}
	}
	return out
}

// broadcastInput is a decoded broadcast request.
type broadcastInput struct {
	req  coordinator.BroadcastRequest
	wait time.Duration
}

// decodeBroadcast reads the body of POST /v1/broadcasts, refusing
// properties Cairn reserves; system.System.Broadcast checks the rest.
// Every failure is an *Error (400 or 415); the wait is capped at maxWait.
func decodeBroadcast(r *http.Request, maxWait time.Duration) (broadcastInput, error) {
	var body wire.BroadcastRequest
	if err := readJSON(r, &body, false); err != nil {
		return broadcastInput{}, err
	}
	in := broadcastInput{wait: min(DefaultBroadcastWait, maxWait), req: coordinator.BroadcastRequest{
		ID: body.ID, VChannels: body.VChannels, Payload: body.Payload, Properties: body.Properties,
		Ack: coordinator.AckMode(body.Ack), Resources: body.Resources,
	}}
	for k := range body.Properties {
		if strings.HasPrefix(k, wire.ReservedPropertyPrefix) {
			return broadcastInput{}, errorf(http.StatusBadRequest, wire.CodeInvalid, "property %q: keys starting with %q are reserved for Cairn", k, wire.ReservedPropertyPrefix)
		}
	}
	if body.Wait != "" {
		d, err := parseWait(body.Wait, maxWait)
		if err != nil {
			return broadcastInput{}, err
		}
		in.wait = d
	}
	return in, nil
}

// handleBroadcast submits a broadcast and runs it for the request's wait:
// 200 with the task once it is done or failed (state says which), 202
// with the task still pending (the wait ran out, another run holds its
// locks, or a sync ack waits for a flush).
func (s *Server) handleBroadcast(w http.ResponseWriter, r *http.Request) error {
	if err := noQuery(r); err != nil {
		return err
	}
	in, err := decodeBroadcast(r, s.cfg.MaxWait)
	if err != nil {
		return err
	}
	s.extendWrite(w, in.wait)
	t, err := s.sys.Broadcast(r.Context(), in.req, in.wait)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if t.State == coordinator.BroadcastPending {
		status = http.StatusAccepted
	}
	writeJSON(w, status, broadcastOut(t))
	return nil
}

func (s *Server) handleBroadcastList(r *http.Request) (wire.BroadcastsResponse, error) {
	if err := onlyQuery(r.URL.Query(), "state"); err != nil {
		return wire.BroadcastsResponse{}, err
	}
	state := coordinator.BroadcastState(r.URL.Query().Get("state"))
	switch state {
	case "", coordinator.BroadcastPending, coordinator.BroadcastDone, coordinator.BroadcastFailed:
	default:
		return wire.BroadcastsResponse{}, errorf(http.StatusBadRequest, wire.CodeMalformed, "state %q: want pending, done or failed", state)
	}
	all, err := s.sys.Broadcaster().List(r.Context())
	if err != nil {
		return wire.BroadcastsResponse{}, err
	}
	resp := wire.BroadcastsResponse{Broadcasts: []wire.BroadcastOut{}}
	for _, t := range all {
		if state == "" || t.State == state {
			resp.Broadcasts = append(resp.Broadcasts, broadcastOut(t))
		}
	}
	return resp, nil
}
