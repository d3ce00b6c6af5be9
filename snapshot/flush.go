package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// DefaultMinSlots is FlushConfig.MinSlots's default: a takeover replays at
// most about this many unflushed slots (about 0.35 s on a local MinIO).
const DefaultMinSlots = 512

// FlushConfig configures a Flusher. Zero fields take the documented
// defaults.
type FlushConfig struct {
	PChannel string // required
	Layout   segmentlog.Layout
	// MinBytes: Run flushes once at least this many bytes of WAL batch
	// objects sit above the checkpoint. Default 8 MiB.
	MinBytes int64
	// MinSlots: Run flushes once at least this many WAL slots sit above the
	// checkpoint, however small. It bounds a takeover: the new writer reads
	// every slot above the checkpoint before its first append
	// (docs/protocol.md "Fence"), so a backlog of small batches would
	// otherwise make a restart after a crash slow. Lower is not free: each
	// round writes a segment file per vchannel, which compaction later
	// reads and rewrites, and which stays in the bucket, named by a
	// retired list, for GC's OrphanAge after that. Default DefaultMinSlots.
	MinSlots int
	// MaxAge: Run flushes once the oldest unflushed message is this old (by
	// its timetick), however little there is. Default 10 min.
	MaxAge time.Duration
	// MaxSlots bounds the slots one flush round reads; a longer backlog is
	// flushed in several rounds, each advancing the checkpoint. Run also
	// flushes as soon as this many slots are pending. Default 4096.
	MaxSlots int
	// MaxBytes bounds the WAL bytes one flush round reads (its memory).
	// Default 256 MiB.
	MaxBytes int64
	// Interval is how often Run looks at the WAL above the checkpoint.
	// Default 1 s.
	Interval time.Duration
	// ReadAhead bounds parallel WAL GETs. Default 32.
	ReadAhead int
	// WriteParallel bounds the segment files encoded and written at once.
	// Default 4.
	WriteParallel int
	// GetTimeout bounds one GET or CAS attempt. Default 1 s.
	GetTimeout time.Duration
	// PutTimeout bounds one segment PUT attempt. Default 30 s.
	PutTimeout time.Duration
	// CommitWithin: a round's checkpoint CAS goes out only this soon after
	// its first segment PUT began; later, the round is given up (ErrLostRace;
	// FlushNow starts a new one) and its files are left to GC, which deletes
	// an unnamed file once it is GCConfig.OrphanAge old — possibly just
	// before a late commit would name it (docs/protocol.md "Flush" rule 9: S ≥ 2
	// × the longest flush). Keep it well below the GCs' OrphanAge. Default
	// DefaultCommitWithin (20 min).
	CommitWithin time.Duration
	// DedupWindow and DedupMaxKeys must equal the writers' (the idempotency
	// window D): the flusher rebuilds the window the next writer restores.
	// Defaults segmentlog.DefaultDedupWindow and DefaultDedupMaxKeys.
	DedupWindow  time.Duration
	DedupMaxKeys int
	// MaxRounds bounds how often one FlushNow starts a round again after
	// losing the checkpoint race to another flusher. Default 16.
	MaxRounds int

	// Positions, if set, is told after every committed round how far each
	// vchannel of the round is flushed (coordinator.Registry provides it):
	// every message of the vchannel below the new checkpoint is in
	// segments (pchannel-wide messages, of no vchannel, have no
	// position). Best effort: the checkpoint, not the position, is what
	// readers and GC rely on; a failed update is logged and made good by
	// the next round that flushes the vchannel.
	Positions PositionSink

	// Tail, if set, is an in-process source of the pchannel's tail: every
	// slot below it is acknowledged (the writer's ack frontier, in `cairn
	// serve`), ok false when it does not know. Run then skips a look,
	// sending no request, while the tail is at or below the first slot the
	// previous look found empty and no round it read is due. Optional:
	// without it every look reads the checkpoint and probes the WAL.
	Tail func() (tail uint64, ok bool)

	Now     func() time.Time // default time.Now
	NewID   func() string    // flush IDs; default UUIDv7
	Logger  *slog.Logger     // default slog.Default()
	OnRound func(Round)      // optional: called after every committed round (metrics, tests)
}

func (c *FlushConfig) withDefaults() {
	if c.MinBytes == 0 {
		c.MinBytes = 8 << 20
	}
	if c.MaxAge == 0 {
		c.MaxAge = 10 * time.Minute
	}
	if c.MinSlots == 0 {
		c.MinSlots = DefaultMinSlots
	}
	if c.MaxSlots == 0 {
		c.MaxSlots = 4096
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 256 << 20
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.ReadAhead == 0 {
		c.ReadAhead = 32
	}
	if c.WriteParallel == 0 {
		c.WriteParallel = 4
	}
	if c.GetTimeout == 0 {
		c.GetTimeout = time.Second
	}
	if c.PutTimeout == 0 {
		c.PutTimeout = 30 * time.Second
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = segmentlog.DefaultDedupWindow
	}
	if c.DedupMaxKeys == 0 {
		c.DedupMaxKeys = segmentlog.DefaultDedupMaxKeys
	}
	if c.MaxRounds == 0 {
		c.MaxRounds = 16
	}
	if c.CommitWithin == 0 {
		c.CommitWithin = DefaultCommitWithin
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewID == nil {
		c.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration a Flusher cannot run with.
func (c *FlushConfig) Validate() error {
	if err := segmentlog.ValidateName("pchannel", c.PChannel); err != nil {
		return err
	}
	switch {
	case c.MinBytes < 0 || c.MaxAge < 0 || c.MinSlots < 0:
		return errors.New("snapshot: flush thresholds must be ≥ 0")
	case c.MaxSlots < 1 || c.MaxBytes < 1:
		return errors.New("snapshot: max slots and max bytes must be ≥ 1")
	case c.Interval <= 0 || c.GetTimeout <= 0 || c.PutTimeout <= 0 || c.CommitWithin <= 0:
		return errors.New("snapshot: interval, timeouts and commit deadline must be > 0")
	case c.ReadAhead < 1 || c.WriteParallel < 1 || c.MaxRounds < 1:
		return errors.New("snapshot: read-ahead, write parallelism and max rounds must be ≥ 1")
	case c.DedupWindow < 0 || c.DedupMaxKeys < 1:
		return errors.New("snapshot: dedup window must be ≥ 0 and max keys ≥ 1")
	}
	return nil
}

// Round describes one committed flush round: the checkpoint moved from From
// to To and the manifest gained Segments.
type Round struct {
	FlushID  string
	From, To uint64 // checkpoint before and after
	Segments []segmentlog.SegmentRef
	Messages int64 // messages written to segments
	WALBytes int64 // bytes of the WAL batch objects read
	Version  uint64
}

// PositionSink records per-vchannel flushed positions (docs/protocol.md,
// "Flush, truncation, GC" rule 7). AdvanceFlushed moves vchannel's position
// forward to id, whose last flushed message has timetick tick; it ignores
// a position at or below the recorded one and a dropped vchannel.
type PositionSink interface {
	AdvanceFlushed(ctx context.Context, vchannel string, id segmentlog.MessageID, tick uint64) error
}

// Flusher turns one pchannel's WAL above its checkpoint into Arrow segments
// and advances the checkpoint by CAS (docs/protocol.md, "Flush, truncation, GC").
// Any number of Flushers, in any number of processes, may flush one
// pchannel concurrently with each other and with its writer: the checkpoint
// CAS decides, and a loser's segment files are orphans. A Flusher is safe
// for concurrent use; its own calls (FlushNow, Run) are serialised.
type Flusher struct {
	cfg   FlushConfig
	store objstore.Store
	log   *slog.Logger
	// checkpoints keeps the last checkpoint a look read: a look that
	// finds it unchanged downloads nothing (the CAS still decides).
	checkpoints *segmentlog.CheckpointCache

	mu      sync.Mutex // serialises rounds; guards pending and dedup
	pending *round     // WAL read by Run that did not reach a threshold yet
	dedup   dedupCache // the window as of the checkpoint this flusher last wrote
	// probed is the first slot the last look of Run found empty (it read
	// everything below it); 0 before the first look.
	probed uint64
}

// NewFlusher returns a Flusher for cfg.PChannel.
func NewFlusher(cfg FlushConfig, store objstore.Store) (*Flusher, error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Flusher{cfg: cfg, store: store, log: cfg.Logger.With("pchannel", cfg.PChannel),
		checkpoints: segmentlog.NewCheckpointCache(store, cfg.Layout)}, nil
}

// FlushNow flushes everything that landed above the checkpoint up to the
// first empty slot, whatever the thresholds, in as many rounds as MaxSlots
// and MaxBytes require. It returns the rounds this call committed (none if
// the checkpoint was already at the tail, or if another flusher covered
// the range first).
func (f *Flusher) FlushNow(ctx context.Context) ([]Round, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var done []Round
	losses := 0
	for {
		r, err := f.readRound(ctx, f.takePending())
		if err != nil {
			return done, err
		}
		if r.slots == 0 {
			return done, nil // at the tail
		}
		res, err := f.commitRound(ctx, r)
		switch {
		case errors.Is(err, ErrLostRace):
			losses++
			if losses >= f.cfg.MaxRounds {
				return done, fmt.Errorf("flush %s: %w %d times in a row", f.cfg.PChannel, err, losses)
			}
			continue
		case err != nil:
			return done, err
		}
		losses = 0
		done = append(done, res)
		if !r.full {
			return done, nil
		}
	}
}

// Run flushes whenever the WAL above the checkpoint reaches MinBytes or
// MinSlots, or its oldest message MaxAge, looking every Interval, until ctx
// ends (then it returns ctx's error). Errors of one look are logged and the
// next look tries again.
func (f *Flusher) Run(ctx context.Context) error {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	for {
		if err := f.poll(ctx); err != nil && ctx.Err() == nil {
			f.log.Warn("flush failed; trying again", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// poll reads on from where the previous look stopped and flushes while a
// threshold is reached (a backlog longer than a round drains at once).
func (f *Flusher) poll(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.idle() {
		return nil
	}
	for {
		r, err := f.readRound(ctx, f.takePending())
		if err != nil {
			return err
		}
		if !r.full {
			f.probed = r.next
		}
		if r.slots == 0 {
			return nil
		}
		if !f.due(r) {
			f.pending = r
			return nil
		}
		_, err = f.commitRound(ctx, r)
		if errors.Is(err, ErrLostRace) {
			return nil // someone else flushed; the next look starts from there
		}
		if err != nil || !r.full {
			return err
		}
	}
}

// due reports whether a round read by Run reached a threshold.
func (f *Flusher) due(r *round) bool {
	if r.full || r.walBytes >= f.cfg.MinBytes || r.slots >= f.cfg.MinSlots {
		return true
	}
	if r.firstTick == 0 {
		return false // only fences, fillers and garbage so far: nothing ages
	}
	return !f.cfg.Now().Before(segmentlog.TickTime(r.firstTick).Add(f.cfg.MaxAge))
}

// idle reports whether Run may skip a look: Tail says nothing was
// acknowledged at or above the slot the last look found empty, and no
// round read earlier is due.
func (f *Flusher) idle() bool {
	if f.cfg.Tail == nil || f.probed == 0 {
		return false
	}
	tail, ok := f.cfg.Tail()
	if !ok || tail > f.probed {
		return false
	}
	return f.pending == nil || !f.due(f.pending)
}

func (f *Flusher) takePending() *round {
	r := f.pending
	f.pending = nil
	return r
}
