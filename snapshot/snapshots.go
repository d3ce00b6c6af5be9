package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/cas"
	"github.com/cairnlog/cairn/segmentlog"
)

// State is the lifecycle state of a snapshot record.
type State string

const (
	// Pending: the record exists and its vchannels are being pinned and
	// flushed; its manifest is not complete. A GC root.
	Pending State = "pending"
	// Committed: the manifest is complete and immutable. A GC root.
	Committed State = "committed"
	// Deleting: drop has begun; pins are being released. Still a GC root.
	Deleting State = "deleting"
	// Released: dropped. The record stays as a tombstone (docs/protocol.md,
	// "Records": records are never deleted), invisible to List and
	// Describe, and its name may be used again.
	Released State = "released"
)

// snapshotFormat is the version of the snapshot record's JSON form.
const snapshotFormat = 1

// Snapshot is the record of one snapshot at {prefix}/snapshots/{name}.json,
// changed only by CAS. A Snapshot is a plain value.
type Snapshot struct {
	Format    int      `json:"format"`
	Name      string   `json:"name"`
	State     State    `json:"state"`
	VChannels []string `json:"vchannels"` // sorted
	// Cuts: for each pchannel of its vchannels, the checkpoint the snapshot
	// was cut at. The snapshot holds every message of its vchannels below
	// each cut.
	Cuts []Cut `json:"cuts,omitempty"`
	// TimeTick: every message of the snapshot's vchannels with a timetick
	// ≤ TimeTick is in the snapshot (the lowest LastTimeTick of its cuts;
	// timeticks increase along each pchannel).
	TimeTick uint64 `json:"timetick"`
	// Starts: for each vchannel with one, the ID its messages in the
	// snapshot begin at: what a reader of the vchannel would deliver from
	// earliest (its create message, or the trim points above it). Files of
	// Segments may hold earlier messages; Open, restore and Messages skip
	// them. Added to format 1: a record without it starts at the
	// beginning.
	Starts map[string]segmentlog.MessageID `json:"starts,omitempty"`
	// Segments is the manifest: the files holding the snapshot's messages.
	Segments  []segmentlog.SegmentRef `json:"segments,omitempty"`
	Messages  int64                   `json:"messages"`
	Bytes     int64                   `json:"bytes"`
	CreatedAt time.Time               `json:"created_at"`
	UpdatedAt time.Time               `json:"updated_at"`
	Version   uint64                  `json:"version"`
}

// Cut is where a snapshot cut one pchannel.
type Cut struct {
	PChannel string `json:"pchannel"`
	C        uint64 `json:"c"`
	TimeTick uint64 `json:"timetick"` // the checkpoint's LastTimeTick
}

// root reports whether the snapshot's manifest keeps its files from GC.
func (s Snapshot) root() bool { return s.State != Released && s.State != "" }

// VChannels is the vchannel registry as snapshots use it (docs/protocol.md
// "Snapshots" rule 1); coordinator.Registry provides it. Pin adds holder's
// pin to the vchannel's record by CAS and returns the pchannel it is bound
// to; it fails once the vchannel is dropped or being reclaimed. Unpin
// removes the pin, in any state; both are idempotent. Safe for concurrent
// use.
type VChannels interface {
	Pin(ctx context.Context, vchannel, holder string) (pchannel string, err error)
	Unpin(ctx context.Context, vchannel, holder string) error
}

// VChannelStarts is implemented by a VChannels that knows where each
// vchannel's messages begin (coordinator.Registry): its create message,
// or its own trim point when higher. Without it a snapshot holds a
// vchannel's messages from the pchannel's trim point on.
type VChannelStarts interface {
	Start(ctx context.Context, vchannel string) (segmentlog.MessageID, error)
}

// SnapshotsConfig configures Snapshots. Zero fields take the documented
// defaults.
type SnapshotsConfig struct {
	Layout segmentlog.Layout
	// Flush is the template of the flushers that cut pchannels (its
	// PChannel is set per pchannel; Layout is this Layout).
	Flush FlushConfig
	// Timeout bounds one store request. Default 5 s.
	Timeout time.Duration

	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default slog.Default()
}

func (c *SnapshotsConfig) withDefaults() {
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Flush.Layout, c.Flush.Now, c.Flush.Logger = c.Layout, c.Now, c.Logger
}

// Validate reports a configuration Snapshots cannot run with.
func (c *SnapshotsConfig) Validate() error {
	if c.Timeout <= 0 {
		return errors.New("snapshot: timeout must be > 0")
	}
	return nil
}

// Snapshots creates, lists, describes, drops and restores snapshots: named,
// immutable manifests over the segments of a set of vchannels (docs/architecture.md,
// "Snapshot and restore"). Every step is a CAS on a record, so calls may run in any
// number of processes; Create, Drop and Restore are idempotent and resume
// where an interrupted call stopped. Safe for concurrent use.
type Snapshots struct {
	cfg    SnapshotsConfig
	store  objstore.Store
	vchans VChannels
	reader *SegmentReader
	log    *slog.Logger
	// checkpoints keeps the records cuts read.
	checkpoints *segmentlog.CheckpointCache
}

// NewSnapshots returns Snapshots over store and the vchannel registry.
func NewSnapshots(cfg SnapshotsConfig, store objstore.Store, vchannels VChannels) (*Snapshots, error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if vchannels == nil {
		return nil, errors.New("snapshot: no vchannel registry")
	}
	return &Snapshots{cfg: cfg, store: store, vchans: vchannels, reader: NewSegmentReader(store, 0), log: cfg.Logger,
		checkpoints: segmentlog.NewCheckpointCache(store, cfg.Layout)}, nil
}

// Create takes a snapshot of vchannels: record pending → pin every
// vchannel (before anything is read) → flush each of their pchannels → cut
// at the new checkpoints → manifest → committed. Every message acked on
// those vchannels before Create was called is in the snapshot. Calling it
// again with the same name and vchannels resumes or returns the committed
// snapshot; other vchannels fail with ErrExists. If a step fails, Create
// rolls back (releases the pins and the record) and returns the error.
func (s *Snapshots) Create(ctx context.Context, name string, vchannels []string) (Snapshot, error) {
	if err := segmentlog.ValidateName("snapshot", name); err != nil {
		return Snapshot{}, err
	}
	if len(vchannels) == 0 {
		return Snapshot{}, errors.New("snapshot: create with no vchannels")
	}
	vs := slices.Sorted(slices.Values(vchannels))
	vs = slices.Compact(vs)
	key := SnapshotKey(s.cfg.Layout, name)
	snap, err := update(ctx, s.store, key, s.cfg.Timeout, func(cur Snapshot, exists bool) (Snapshot, error) {
		if exists && cur.root() {
			if !slices.Equal(cur.VChannels, vs) {
				return cur, fmt.Errorf("snapshot %s over %v: %w", name, cur.VChannels, ErrExists)
			}
			return cur, cas.ErrUnchanged
		}
		now := s.cfg.Now().UTC()
		return Snapshot{Format: snapshotFormat, Name: name, State: Pending, VChannels: vs, CreatedAt: now, UpdatedAt: now, Version: cur.Version + 1}, nil
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("create snapshot %s: %w", name, err)
	}
	if snap.State == Committed {
		return snap, nil
	}
	if snap.State != Pending {
		return snap, fmt.Errorf("create snapshot %s: %w: it is %s", name, ErrState, snap.State)
	}
	committed, err := s.fill(ctx, snap)
	if err != nil {
		if rerr := s.release(context.WithoutCancel(ctx), name); rerr != nil {
			err = errors.Join(err, fmt.Errorf("roll back: %w", rerr))
		}
		return Snapshot{}, fmt.Errorf("create snapshot %s: %w", name, err)
	}
	return committed, nil
}

// fill pins, flushes, cuts and commits a pending snapshot.
func (s *Snapshots) fill(ctx context.Context, snap Snapshot) (Snapshot, error) {
	byP := make(map[string][]string) // pchannel → its vchannels in the snapshot
	for _, v := range snap.VChannels {
		p, err := s.vchans.Pin(ctx, v, snap.Name)
		if err != nil {
			return Snapshot{}, fmt.Errorf("pin %s: %w", v, err)
		}
		byP[p] = append(byP[p], v)
	}
	var cuts []Cut
	var refs []segmentlog.SegmentRef
	starts := make(map[string]segmentlog.MessageID)
	var messages int64
	for _, p := range slices.Sorted(maps.Keys(byP)) {
		cfg := s.cfg.Flush
		cfg.PChannel = p
		f, err := NewFlusher(cfg, s.store)
		if err != nil {
			return Snapshot{}, err
		}
		if _, err := f.FlushNow(ctx); err != nil {
			return Snapshot{}, fmt.Errorf("flush %s: %w", p, err)
		}
		cp, _, err := readCheckpoint(ctx, s.checkpoints, p, s.cfg.Timeout)
		if err != nil {
			return Snapshot{}, err
		}
		cuts = append(cuts, Cut{PChannel: p, C: cp.C, TimeTick: cp.LastTimeTick})
		for _, v := range byP[p] {
			start, err := s.start(ctx, v, cp.Trim)
			if err != nil {
				return Snapshot{}, err
			}
			if start != (segmentlog.MessageID{}) {
				starts[v] = start
			}
			vrefs, n, err := s.scope(ctx, cp.Segments, v, start)
			if err != nil {
				return Snapshot{}, err
			}
			refs, messages = append(refs, vrefs...), messages+n
		}
	}
	if len(starts) == 0 {
		starts = nil
	}
	return update(ctx, s.store, SnapshotKey(s.cfg.Layout, snap.Name), s.cfg.Timeout, func(cur Snapshot, exists bool) (Snapshot, error) {
		switch {
		case !exists || cur.State == Released:
			return cur, fmt.Errorf("%w: the pending record is gone", ErrState)
		case cur.State == Committed:
			return cur, cas.ErrUnchanged // another Create of the same snapshot finished first
		case cur.State != Pending:
			return cur, fmt.Errorf("%w: it is %s", ErrState, cur.State)
		}
		next := cur
		next.State, next.Cuts, next.Segments, next.Starts = Committed, cuts, refs, starts
		next.TimeTick = cuts[0].TimeTick
		for _, c := range cuts {
			next.TimeTick = min(next.TimeTick, c.TimeTick)
		}
		next.Messages, next.Bytes = messages, 0
		for _, r := range refs {
			next.Bytes += r.Bytes
		}
		next.UpdatedAt, next.Version = s.cfg.Now().UTC(), cur.Version+1
		return next, nil
	})
}

// Describe returns the snapshot named name; ErrNotFound if there is none
// (or it was dropped).
func (s *Snapshots) Describe(ctx context.Context, name string) (Snapshot, error) {
	snap, _, ok, err := readRecord[Snapshot](ctx, s.store, SnapshotKey(s.cfg.Layout, name), s.cfg.Timeout)
	if err != nil {
		return Snapshot{}, fmt.Errorf("describe snapshot %s: %w", name, err)
	}
	if !ok || !snap.root() {
		return Snapshot{}, fmt.Errorf("describe snapshot %s: %w", name, ErrNotFound)
	}
	return snap, nil
}

// List returns the snapshots not dropped, by name; with a vchannel, only
// those that include it.
func (s *Snapshots) List(ctx context.Context, vchannel string) ([]Snapshot, error) {
	all, err := listRecords[Snapshot](ctx, s.store, SnapshotsPrefix(s.cfg.Layout), s.cfg.Timeout)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	out := all[:0]
	for _, snap := range all {
		if snap.root() && (vchannel == "" || slices.Contains(snap.VChannels, vchannel)) {
			out = append(out, snap)
		}
	}
	return out, nil
}

// Drop drops the snapshot: deleting → its pins released → released (the
// record stays as a tombstone, no longer a GC root). Dropping a snapshot
// that is not there, or already dropped, is not an error. Files a restored
// vchannel still uses stay: restore jobs are GC roots of their own.
func (s *Snapshots) Drop(ctx context.Context, name string) error {
	if err := s.release(ctx, name); err != nil {
		return fmt.Errorf("drop snapshot %s: %w", name, err)
	}
	return nil
}

// release moves the record to deleting, unpins its vchannels, and moves it
// to released.
func (s *Snapshots) release(ctx context.Context, name string) error {
	key := SnapshotKey(s.cfg.Layout, name)
	snap, err := update(ctx, s.store, key, s.cfg.Timeout, func(cur Snapshot, exists bool) (Snapshot, error) {
		if !exists || cur.State == Released || cur.State == Deleting {
			return cur, cas.ErrUnchanged
		}
		next := cur
		next.State, next.UpdatedAt, next.Version = Deleting, s.cfg.Now().UTC(), cur.Version+1
		return next, nil
	})
	if err != nil {
		return err
	}
	if snap.State != Deleting {
		return nil // absent or already released
	}
	for _, v := range snap.VChannels {
		if err := s.vchans.Unpin(ctx, v, name); err != nil {
			return fmt.Errorf("unpin %s: %w", v, err)
		}
	}
	_, err = update(ctx, s.store, key, s.cfg.Timeout, func(cur Snapshot, exists bool) (Snapshot, error) {
		if !exists || cur.State != Deleting {
			return cur, cas.ErrUnchanged
		}
		next := cur
		next.State, next.Segments, next.UpdatedAt, next.Version = Released, nil, s.cfg.Now().UTC(), cur.Version+1
		return next, nil
	})
	return err
}

// Open iterates the messages of one vchannel of a committed snapshot, in ID
// order.
func (s *Snapshots) Open(ctx context.Context, name, vchannel string) (segmentlog.SegmentIterator, error) {
	snap, err := s.Describe(ctx, name)
	if err != nil {
		return nil, err
	}
	if snap.State != Committed {
		return nil, fmt.Errorf("open snapshot %s: %w: it is %s", name, ErrState, snap.State)
	}
	return s.reader.open(ctx, snap.Segments, ^uint64(0), snap.Starts[vchannel], []string{vchannel})
}

// start is where vchannel v's messages begin for a snapshot: the highest
// of the pchannel's trim point, its create message and its own trim point
// (VChannelStarts).
func (s *Snapshots) start(ctx context.Context, v string, trim segmentlog.MessageID) (segmentlog.MessageID, error) {
	st, ok := s.vchans.(VChannelStarts)
	if !ok {
		return trim, nil
	}
	id, err := st.Start(ctx, v)
	if err != nil {
		return segmentlog.MessageID{}, fmt.Errorf("start of %s: %w", v, err)
	}
	if id.Less(trim) {
		return trim, nil
	}
	return id, nil
}

// scope returns the files of manifest holding messages of vchannel v at
// or after start, and how many such messages they hold: a file that
// straddles start is read to count them.
func (s *Snapshots) scope(ctx context.Context, manifest []segmentlog.SegmentRef, v string, start segmentlog.MessageID) ([]segmentlog.SegmentRef, int64, error) {
	var refs []segmentlog.SegmentRef
	var n int64
	for _, ref := range manifest {
		if ref.VChannel != v || whollyTrimmed(ref, start) {
			continue
		}
		refs = append(refs, ref)
		if ref.FirstOffset >= start.Offset && (ref.FirstOffset > start.Offset || start.Index == 0) {
			n += ref.Messages
			continue
		}
		it, err := s.reader.open(ctx, []segmentlog.SegmentRef{ref}, ^uint64(0), start, []string{v})
		if err != nil {
			return nil, 0, fmt.Errorf("count %s from %v: %w", ref.Key, start, err)
		}
		for {
			_, err := it.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				it.Close()
				return nil, 0, fmt.Errorf("count %s from %v: %w", ref.Key, start, err)
			}
			n++
		}
		it.Close()
	}
	return refs, n, nil
}
