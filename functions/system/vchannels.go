package system

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/segmentlog"
)

// The data path's view of the registry and of the pchannels: vchannel
// records cached for a second (the binding never changes), the rule every
// append route applies to the vchannels its messages name, where a
// vchannel's own messages begin, which restore job a vchannel's history
// comes from, and which pchannels were ever written.

// vchannelCacheTTL bounds how long a vchannel record read by this process
// answers for the registry on the data path (appends and reads by
// vchannel). The binding never changes; the state may, so an append within
// this long after a drop by another process may still land (after the
// drop message, where no reader of the vchannel looks). A drop through this
// process forgets the record at once (ForgetVChannel).
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

// VChannel returns the record of vchannel name, from the cache if fresh.
// If its create message has not landed yet (a create cut short), it
// finishes the create first, so that nothing of the vchannel lands before
// its create message.
func (s *System) VChannel(ctx context.Context, name string) (coordinator.VChannel, error) {
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
	s.NoteVChannel(v)
	return v, nil
}

// NoteVChannel caches v, a record this process just wrote or read, and
// notes that its pchannel exists.
func (s *System) NoteVChannel(v coordinator.VChannel) {
	s.vchans.put(v)
	if v.Created != nil {
		s.NoteWritten(v.PChannel)
	}
}

// ForgetVChannel drops the cached record of name (a drop through this
// process).
func (s *System) ForgetVChannel(name string) { s.vchans.forget(name) }

// ActiveVChannel returns the record of name if it takes appends, else an
// error wrapping coordinator.ErrVChannelDropped.
func (s *System) ActiveVChannel(ctx context.Context, name string) (coordinator.VChannel, error) {
	v, err := s.VChannel(ctx, name)
	if err != nil {
		return v, err
	}
	if v.State != coordinator.VChannelActive {
		return v, fmt.Errorf("%w: vchannel %q is %s", coordinator.ErrVChannelDropped, name, v.State)
	}
	return v, nil
}

// CheckTags applies the vchannel rule of every append route to a raw
// pchannel append: a message may name a vchannel the registry does not
// know (a raw tag), but a registered vchannel only if it is active and
// bound to p — what the vchannel append route enforces by routing. So a
// dropped vchannel takes no message on either route
// (coordinator.ErrVChannelDropped), and no message of a vchannel lands on
// another pchannel (coordinator.ErrBindingConflict). Records, and the
// absence of one, are cached as VChannel's.
func (s *System) CheckTags(ctx context.Context, p string, msgs []segmentlog.Message) error {
	var seen string // batches usually carry one vchannel
	for _, m := range msgs {
		name := m.VChannel
		if name == seen {
			continue
		}
		seen = name // an absent name too: a lookup (lock, map, clock) per message was 1 % of an append's CPU
		if s.vchans.isAbsent(name) {
			continue
		}
		v, err := s.VChannel(ctx, name)
		switch {
		case errors.Is(err, coordinator.ErrNoVChannel):
			s.vchans.putAbsent(name)
			continue
		case err != nil:
			return err
		case v.State != coordinator.VChannelActive:
			return fmt.Errorf("%w: vchannel %q is %s: it takes no more messages", coordinator.ErrVChannelDropped, name, v.State)
		case v.PChannel != p:
			return fmt.Errorf("%w: vchannel %q is bound to pchannel %q, not %q", coordinator.ErrBindingConflict, name, v.PChannel, p)
		}
	}
	return nil
}

// LiveStart is where the messages appended to v begin: its create message
// (nothing of v lands before it) moved up to the trim points of v and its
// pchannel when they lie above it, or the pchannel's start if the create
// message is not known yet.
func (s *System) LiveStart(ctx context.Context, v coordinator.VChannel) (segmentlog.Position, error) {
	if v.Created == nil {
		return segmentlog.Earliest(), nil
	}
	start := segmentlog.AtID(v.Created.ID)
	cp, _, err := s.checkpoints.Read(ctx, v.PChannel)
	if err != nil {
		return segmentlog.Position{}, err
	}
	for _, t := range []segmentlog.MessageID{cp.Trim, v.Trim} {
		if start.ID.Less(t) {
			start.ID = t
		}
	}
	return start, nil
}

// RestoredFrom returns the ID of the restore job whose history v has, or
// "" if v was not restored (snapshot.Snapshots.RestoredFrom), looked up
// once per process and kept: restore creates a target vchannel only after
// its job is done.
func (s *System) RestoredFrom(ctx context.Context, v coordinator.VChannel) (string, error) {
	if v.Created == nil {
		return "", nil // not even created: no restore has finished with it
	}
	if id, ok := s.vchans.restoredFrom(v.Name); ok {
		return id, nil
	}
	found, err := s.snaps.RestoredFrom(ctx, v.Name)
	if err != nil {
		return "", err
	}
	s.vchans.setRestored(v.Name, found)
	return found, nil
}

// Written reports whether pchannel has a lease record, i.e. was ever
// written: a pchannel comes to exist with its first append (records are
// never deleted, so a yes is kept).
func (s *System) Written(ctx context.Context, pchannel string) (bool, error) {
	if _, ok := s.written.Load(pchannel); ok {
		return true, nil
	}
	if _, _, ok := s.pool.Frontier(pchannel); ok {
		s.NoteWritten(pchannel)
		return true, nil
	}
	_, err := s.leases.Describe(ctx, pchannel)
	switch {
	case errors.Is(err, coordinator.ErrNoLease):
		return false, nil
	case err != nil:
		return false, err
	}
	s.NoteWritten(pchannel)
	return true, nil
}

// NoteWritten notes that pchannel has a lease record (an append through
// this process made one).
func (s *System) NoteWritten(pchannel string) { s.written.Store(pchannel, struct{}{}) }

// readRestored reads the restored history of vchannel v (restore job) from
// ID from on: messages of types (segmentlog.MessageType.Wanted) with a
// timetick ≥ minTick, up to maxMessages messages and maxBytes of payload
// (at least one message). It never waits: the history is complete. Once
// the history is exhausted, live is where v's own messages begin
// (LiveStart); until then live is nil, the page holds at least one message
// and the history goes on after its last.
func (s *System) readRestored(ctx context.Context, job string, v coordinator.VChannel, from segmentlog.MessageID, minTick uint64,
	types []segmentlog.MessageType, maxMessages, maxBytes int) (page []segmentlog.Delivery, live *segmentlog.Position, err error) {
	it, err := s.snaps.OpenRestored(ctx, job, v.Name, from)
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	size := 0
	for len(page) < maxMessages && size < maxBytes {
		d, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			start, err := s.LiveStart(ctx, v)
			if err != nil {
				return nil, nil, err
			}
			return page, &start, nil
		}
		if err != nil {
			if len(page) > 0 {
				break
			}
			return nil, nil, err
		}
		if !d.Type.Wanted(types) || d.TimeTick < minTick {
			continue
		}
		page = append(page, d)
		size += len(d.Payload)
	}
	return page, nil, nil
}

// CreateVChannel creates vchannel name bound to pchannel ("" for the least
// loaded), appending its create message through the pool
// (coordinator.Registry.Create), and keeps its record.
func (s *System) CreateVChannel(ctx context.Context, name, pchannel string) (coordinator.VChannel, error) {
	v, err := s.registry.Create(ctx, s.pool, name, pchannel)
	if err != nil {
		return v, err
	}
	s.NoteVChannel(v)
	return v, nil
}

// DropVChannel drops vchannel name, appending its drop message through the
// pool, and forgets this process's copy of its record before and after.
func (s *System) DropVChannel(ctx context.Context, name string) (coordinator.VChannel, error) {
	s.ForgetVChannel(name)
	v, err := s.registry.Drop(ctx, s.pool, name)
	s.ForgetVChannel(name)
	return v, err
}

// BeginTxn begins a transaction on vchannel name, which must take appends
// (ActiveVChannel), in the writer of its pchannel (Pool.BeginTxn).
func (s *System) BeginTxn(ctx context.Context, name string, keepalive time.Duration) (v coordinator.VChannel, term, id uint64, err error) {
	if v, err = s.ActiveVChannel(ctx, name); err != nil {
		return v, 0, 0, err
	}
	if term, id, err = s.pool.BeginTxn(ctx, v.PChannel, name, keepalive); err != nil {
		return v, 0, 0, err
	}
	s.NoteWritten(v.PChannel)
	return v, term, id, nil
}
