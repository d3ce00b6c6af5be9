package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
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

func (s *Server) handleVChannelCreate(w http.ResponseWriter, r *http.Request) error {
	if err := noQuery(r); err != nil {
		return err
	}
	var req wire.VChannelCreateRequest
	if err := readJSON(r, &req, false); err != nil {
		return err
	}
	if err := validName("vchannel", req.Name); err != nil {
		return err
	}
	if req.PChannel != "" {
		if err := validName("pchannel", req.PChannel); err != nil {
			return err
		}
	}
	v, err := s.registry.Create(r.Context(), s.pool, req.Name, req.PChannel)
	if err != nil {
		return err
	}
	s.vchans.put(v)
	s.known.Store(v.PChannel, struct{}{})
	writeJSON(w, http.StatusOK, vchannelOut(v))
	return nil
}

func (s *Server) handleVChannelList(w http.ResponseWriter, r *http.Request) error {
	if err := onlyQuery(r, "pchannel", "state"); err != nil {
		return err
	}
	q := r.URL.Query()
	f := coordinator.VChannelFilter{PChannel: q.Get("pchannel"), State: coordinator.VChannelState(q.Get("state"))}
	if f.PChannel != "" {
		if err := validName("pchannel", f.PChannel); err != nil {
			return err
		}
	}
	switch f.State {
	case "", coordinator.VChannelActive, coordinator.VChannelDropped, coordinator.VChannelReclaiming:
	default:
		return errorf(http.StatusBadRequest, wire.CodeMalformed, "state %q: want active, dropped or reclaiming", f.State)
	}
	vs, err := s.registry.List(r.Context(), f)
	if err != nil {
		return err
	}
	resp := wire.VChannelsResponse{VChannels: make([]wire.VChannelOut, len(vs))}
	for i, v := range vs {
		resp.VChannels[i] = vchannelOut(v)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) handleVChannelDescribe(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("v")
	if err := validName("vchannel", name); err != nil {
		return err
	}
	if err := noQuery(r); err != nil {
		return err
	}
	v, err := s.registry.Describe(r.Context(), name)
	if err != nil {
		return err
	}
	s.vchans.put(v)
	out := vchannelOut(v)
	pol, err := snapshot.ReadPolicy(r.Context(), s.store, s.sc.Layout, snapshot.PolicyVChannel, name)
	if err != nil {
		return err
	}
	ret, err := s.retentionOut(r.Context(), pol, v.PChannel, name, v.Trim)
	if err != nil {
		return err
	}
	out.Retention = &ret
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleVChannelDrop(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("v")
	if err := validName("vchannel", name); err != nil {
		return err
	}
	if err := noQuery(r); err != nil {
		return err
	}
	s.vchans.forget(name)
	v, err := s.registry.Drop(r.Context(), s.pool, name)
	s.vchans.forget(name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, vchannelOut(v))
	return nil
}

func (s *Server) handleVChannelLocate(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("v")
	if err := validName("vchannel", name); err != nil {
		return err
	}
	if err := noQuery(r); err != nil {
		return err
	}
	loc, err := s.registry.Locate(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.LocationOut{
		VChannel: loc.VChannel, PChannel: loc.PChannel, Node: loc.Node, Address: loc.Address,
		Term: loc.Term, Expires: loc.Expires,
		Assignment: wire.AssignmentOut{State: string(loc.Assignment.State), Node: loc.Assignment.Node},
	})
	return nil
}

// vchannelCacheTTL bounds how long a vchannel record read by this process
// answers for the registry on the data path (appends and reads by
// vchannel). The binding never changes; the state may, so an append within
// this long after a drop by another process may still land (after the
// drop message, where no reader of the vchannel looks). A drop through this
// server forgets the record at once.
const vchannelCacheTTL = time.Second

// maxAbsentEntries bounds the names the cache remembers as unregistered.
const maxAbsentEntries = 4096

// vchannelCache keeps recently read vchannel records, and for each
// vchannel whose create message has landed, the restore job whose history
// it has ("" for none): restore creates a target vchannel only after its
// job is done, so that answer never changes once the vchannel exists.
// Safe for concurrent use.
type vchannelCache struct {
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	entries  map[string]vchannelEntry
	absent   map[string]time.Time // vchannel → when the registry had no record of it
	restored map[string]string    // vchannel → restore job ID, "" for none
}

type vchannelEntry struct {
	v  coordinator.VChannel
	at time.Time
}

func (c *vchannelCache) put(v coordinator.VChannel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[v.Name] = vchannelEntry{v: v, at: c.now()}
	delete(c.absent, v.Name)
}

func (c *vchannelCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, name)
	delete(c.absent, name)
}

// putAbsent notes that the registry has no record of name.
func (c *vchannelCache) putAbsent(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.absent == nil {
		c.absent = map[string]time.Time{}
	}
	if len(c.absent) >= maxAbsentEntries {
		clear(c.absent) // many raw names: forget them all rather than grow
	}
	c.absent[name] = c.now()
}

// isAbsent reports whether the registry had no record of name within the
// TTL.
func (c *vchannelCache) isAbsent(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.absent[name]
	return ok && c.now().Sub(at) < c.ttl
}

func (c *vchannelCache) get(name string) (coordinator.VChannel, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[name]
	if !ok || c.now().Sub(e.at) >= c.ttl {
		return coordinator.VChannel{}, false
	}
	return e.v, true
}

func (c *vchannelCache) restoredFrom(name string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.restored[name]
	return id, ok
}

func (c *vchannelCache) setRestored(name, job string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.restored == nil {
		c.restored = map[string]string{}
	}
	c.restored[name] = job
}

// vchannel returns the record of vchannel name, from the cache if fresh.
// If its create message has not landed yet (a create cut short), it
// finishes the create first, so that nothing of the vchannel lands before
// its create message.
func (s *Server) vchannel(ctx context.Context, name string) (coordinator.VChannel, error) {
	if err := validName("vchannel", name); err != nil {
		return coordinator.VChannel{}, err
	}
	if v, ok := s.vchans.get(name); ok {
		return v, nil
	}
	v, err := s.registry.Describe(ctx, name)
	if err != nil {
		return coordinator.VChannel{}, err
	}
	if v.State == coordinator.VChannelActive && v.Created == nil {
		if v, err = s.registry.Create(ctx, s.pool, name, v.PChannel); err != nil {
			return coordinator.VChannel{}, err
		}
	}
	s.vchans.put(v)
	return v, nil
}
