package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// GCConfig configures a GC. Zero fields take the documented defaults.
type GCConfig struct {
	Layout segmentlog.Layout
	// MinAge: a WAL object below the truncation point is deleted only once
	// it is this old (docs/protocol.md min_age; 2·TTL + 3R + skew ≤ MinAge).
	// Default 1 h.
	MinAge time.Duration
	// OrphanAge: a segment file no manifest names is deleted only once it
	// is this old (docs/protocol.md S, at least twice the longest flush).
	// Default 1 h.
	OrphanAge time.Duration
	// ShrinkGarbage replaces a lower-term batch inside a protected window
	// by a tombstone, with PutIfMatch, once it is older than MinAge: the
	// slot stays occupied, its payload goes. Default false.
	ShrinkGarbage bool
	// Retainers name WAL positions still needed below the checkpoint:
	// per-vchannel positions, open transactions, pending snapshots,
	// broadcasts not yet acked (docs/protocol.md "Flush, truncation, GC" rule 6).
	// The truncation point is the lowest of them and the checkpoint.
	Retainers []Retainer
	// Reclaimer, if set, lets Collect reclaim the segments of dropped,
	// unpinned vchannels (ReclaimDropped).
	Reclaimer Reclaimer
	// Trims, if set, gives RetireTrimmed the vchannels' trim points; the
	// pchannel's is in its checkpoint.
	Trims TrimPoints
	// Timeout bounds one store request. Default 5 s.
	Timeout time.Duration

	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default slog.Default()
}

// Retainer holds back WAL truncation: Retain returns the lowest offset of
// pchannel that something still needs (ok=false when nothing below the
// checkpoint is needed). Implementations are safe for concurrent use.
type Retainer interface {
	Retain(ctx context.Context, pchannel string) (offset uint64, ok bool, err error)
}

// RetainFunc adapts a function to Retainer.
type RetainFunc func(ctx context.Context, pchannel string) (uint64, bool, error)

// Retain calls f.
func (f RetainFunc) Retain(ctx context.Context, pchannel string) (uint64, bool, error) {
	return f(ctx, pchannel)
}

func (c *GCConfig) withDefaults() {
	if c.MinAge == 0 {
		c.MinAge = DefaultMinAge
	}
	if c.OrphanAge == 0 {
		c.OrphanAge = DefaultOrphanAge
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// DefaultOrphanAge is GCConfig.OrphanAge's default, docs/protocol.md's S: a
// flush or a compaction commits its files within DefaultCommitWithin of
// writing them, or leaves them to GC.
const DefaultOrphanAge = time.Hour

// DefaultCommitWithin is the default of FlushConfig.CommitWithin and
// CompactConfig.CommitWithin: a third of DefaultOrphanAge.
const DefaultCommitWithin = DefaultOrphanAge / 3

// DefaultMinAge is GCConfig.MinAge's default, docs/protocol.md's min_age: a
// deployment's lease TTL and request timeouts must keep 2·TTL + 3R + skew
// within it (system.Config.Validate checks).
const DefaultMinAge = time.Hour

// Validate reports a configuration GC cannot run with.
func (c *GCConfig) Validate() error {
	switch {
	case c.MinAge < 0 || c.OrphanAge < 0:
		return errors.New("snapshot: gc ages must be ≥ 0")
	case c.Timeout <= 0:
		return errors.New("snapshot: gc timeout must be > 0")
	}
	return nil
}

// GC deletes what the protocol allows: WAL objects below the truncation
// point and older than MinAge, except the FenceWindow slots from every term
// change (so a zombie's late PUT always meets an object), and segment files
// that no manifest names once they are older than OrphanAge (a file
// compaction retired counts as named until OrphanAge after its
// retirement), and dedup state objects no checkpoint names, at the same
// age. Any number of
// GCs may run at once, with flushers and writers: its only writes are
// conditional (a tombstone over garbage, a checkpoint without a reclaimed
// vchannel's references). Safe for concurrent use.
type GC struct {
	cfg   GCConfig
	store objstore.Store
	log   *slog.Logger

	checkpoints *segmentlog.CheckpointCache // the records the last pass read
	retired     retiredCache                // the retired lists read so far
}

// NewGC returns a GC over store.
func NewGC(cfg GCConfig, store objstore.Store) (*GC, error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &GC{cfg: cfg, store: store, log: cfg.Logger, checkpoints: segmentlog.NewCheckpointCache(store, cfg.Layout)}, nil
}

// WALResult says what one CollectWAL did.
type WALResult struct {
	Point     uint64 // truncation point: min(checkpoint, retainers)
	Deleted   int    // WAL objects deleted
	Kept      int    // objects below the point kept: protected window slots
	Young     int    // objects below the point younger than MinAge
	Tombstone int    // garbage in protected slots shrunk to tombstones
}

// CollectWAL truncates the WAL of pchannel (docs/protocol.md "Flush,
// truncation, GC" rules 4 and 6).
func (g *GC) CollectWAL(ctx context.Context, pchannel string) (WALResult, error) {
	cp, _, err := readCheckpoint(ctx, g.checkpoints, pchannel, g.cfg.Timeout)
	if err != nil {
		return WALResult{}, fmt.Errorf("gc %s: %w", pchannel, err)
	}
	res := WALResult{Point: cp.C}
	for _, r := range g.cfg.Retainers {
		off, ok, err := r.Retain(ctx, pchannel)
		if err != nil {
			return res, fmt.Errorf("gc %s: retainer: %w", pchannel, err)
		}
		if ok && off < res.Point {
			res.Point = off
		}
	}
	if res.Point == 0 {
		return res, nil
	}
	now := g.cfg.Now()
	l := g.cfg.Layout
	var todo []objstore.Attrs
	err = g.list(ctx, l.WALPrefix(pchannel), func(a objstore.Attrs) error {
		off, ok := l.ParseWALOffset(pchannel, a.Key)
		if !ok {
			return nil
		}
		if off >= res.Point {
			return objstore.ErrStopList // keys list in offset order
		}
		if now.Sub(a.LastModified) < g.cfg.MinAge {
			res.Young++
			return nil
		}
		if term, ok := protectedBy(cp.TermChanges, off, segmentlog.FenceWindow); ok {
			res.Kept++
			if g.cfg.ShrinkGarbage {
				shrunk, err := g.shrink(ctx, a.Key, off, term)
				if err != nil {
					return err
				}
				if shrunk {
					res.Tombstone++
				}
			}
			return nil
		}
		todo = append(todo, a)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("gc %s: %w", pchannel, err)
	}
	for _, a := range todo {
		if err := g.delete(ctx, a.Key); err != nil {
			return res, fmt.Errorf("gc %s: %w", pchannel, err)
		}
		res.Deleted++
	}
	g.log.Debug("wal collected", "pchannel", pchannel, "point", res.Point, "deleted", res.Deleted, "kept", res.Kept, "young", res.Young)
	return res, nil
}

// protectedBy reports whether slot off lies in the W slots from a term
// change, and that change's term.
func protectedBy(changes []segmentlog.TermChange, off, w uint64) (uint64, bool) {
	for _, tc := range changes {
		if off >= tc.Offset && off-tc.Offset < w {
			return tc.Term, true
		}
	}
	return 0, false
}

// shrink replaces the slot's batch by a tombstone if it is garbage: a data
// batch of a term below the window's. PutIfMatch on the ETag read makes it
// a no-op if anything changed meanwhile.
func (g *GC) shrink(ctx context.Context, key string, off, windowTerm uint64) (bool, error) {
	var obj objstore.Object
	err := retry(ctx, func(actx context.Context) error {
		var err error
		obj, err = g.store.Get(actx, key)
		return err
	}, g.cfg.Timeout)
	if errors.Is(err, objstore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	h, err := segmentlog.DecodeHeader(obj.Body)
	if err != nil || h.Kind != segmentlog.KindData || h.Term >= windowTerm {
		return false, nil // not garbage (or not ours to judge)
	}
	tomb := segmentlog.Batch{Kind: segmentlog.KindTombstone, Term: h.Term, Offset: off, Nonce: h.Nonce}
	body, err := tomb.Encode()
	if err != nil {
		return false, err
	}
	actx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	if _, err := g.store.PutIfMatch(actx, key, body, obj.ETag); err != nil {
		if errors.Is(err, objstore.ErrConflict) || objstore.IsRetryable(err) {
			return false, nil // changed meanwhile, or unknown: the next pass looks again
		}
		return false, err
	}
	return true, nil
}

// OrphanResult says what one CollectOrphans did.
type OrphanResult struct {
	Referenced int // segment keys named by a manifest or a snapshot, and dedup state objects named by a checkpoint
	Deleted    int // orphan files deleted
	Young      int // orphan files younger than OrphanAge
	// DedupDeleted counts the orphan dedup state objects deleted (among
	// Deleted; DedupYoung among Young).
	DedupDeleted, DedupYoung int
}

// CollectOrphans deletes segment files that no checkpoint manifest, no
// snapshot and no restored vchannel names, once older than OrphanAge
// (docs/protocol.md "Flush, truncation, GC" rule 3). A file a retired list
// (or a record's inline Retired) names is kept until OrphanAge after its
// RetiredAt, whatever its own age: compaction took it out of the manifest,
// but a reader or a snapshot being created may still hold a manifest that
// names it. It lists the files first and reads the references after, so a
// file committed to a manifest before the references are read is never
// taken for an orphan; a file listed but committed later would have to
// belong to a flush longer than OrphanAge.
//
// Dedup state objects (meta/dedup/{p}/…) follow the same rule: one that
// its pchannel's checkpoint does not name is deleted once OrphanAge old. A
// flusher writes it after the time its commit deadline counts from
// (FlushConfig.CommitWithin < OrphanAge) and deletes the one the record it
// replaced named, so such an object is left by a round that lost its race
// or crashed before its CAS, or by a delete that failed: no checkpoint
// will name it again.
func (g *GC) CollectOrphans(ctx context.Context) (OrphanResult, error) {
	var res OrphanResult
	now := g.cfg.Now()
	var candidates []objstore.Attrs
	if err := g.list(ctx, SegmentsPrefix(g.cfg.Layout), func(a objstore.Attrs) error {
		if strings.HasSuffix(a.Key, ".arrow") {
			candidates = append(candidates, a)
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("gc orphans: %w", err)
	}
	dedupPrefix := g.cfg.Layout.DedupStatesPrefix()
	if err := g.list(ctx, dedupPrefix, func(a objstore.Attrs) error {
		if strings.HasSuffix(a.Key, ".bin") {
			candidates = append(candidates, a)
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("gc orphans: %w", err)
	}
	refs, err := g.references(ctx, now)
	if err != nil {
		return res, fmt.Errorf("gc orphans: %w", err)
	}
	res.Referenced = len(refs)
	for _, a := range candidates {
		if refs[a.Key] {
			continue
		}
		dedup := strings.HasPrefix(a.Key, dedupPrefix)
		if now.Sub(a.LastModified) < g.cfg.OrphanAge {
			res.Young++
			if dedup {
				res.DedupYoung++
			}
			continue
		}
		if err := g.delete(ctx, a.Key); err != nil {
			return res, fmt.Errorf("gc orphans: %w", err)
		}
		res.Deleted++
		if dedup {
			res.DedupDeleted++
		}
	}
	return res, nil
}

// Collect reclaims dropped vchannels' segments, retires the segments
// wholly below a trim point, truncates the WAL and
// prunes the expired retired lists of every pchannel with a checkpoint,
// then deletes orphan segment files and dedup state objects. It goes on past a pchannel that fails
// and returns the errors joined.
func (g *GC) Collect(ctx context.Context) error {
	var errs []error
	pchannels, err := g.pchannels(ctx)
	if err != nil {
		return err
	}
	for _, p := range pchannels {
		if _, err := g.ReclaimDropped(ctx, p); err != nil {
			errs = append(errs, err)
		}
		if _, err := g.RetireTrimmed(ctx, p); err != nil {
			errs = append(errs, err)
		}
		if _, err := g.CollectWAL(ctx, p); err != nil {
			errs = append(errs, err)
		}
		if _, err := g.PruneRetired(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := g.CollectOrphans(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// pchannels lists the pchannels that have a checkpoint record.
func (g *GC) pchannels(ctx context.Context) ([]string, error) {
	var out []string
	prefix := CheckpointsPrefix(g.cfg.Layout)
	err := g.list(ctx, prefix, func(a objstore.Attrs) error {
		if p, ok := strings.CutSuffix(strings.TrimPrefix(a.Key, prefix), ".json"); ok && !strings.Contains(p, "/") {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

func (g *GC) list(ctx context.Context, prefix string, fn func(objstore.Attrs) error) error {
	// A listing is restarted after the last key seen when it fails midway.
	after := ""
	// A listing may take longer than one request's timeout: it runs under
	// the caller's ctx.
	return retry(ctx, func(context.Context) error {
		return g.store.List(ctx, prefix, after, func(a objstore.Attrs) error {
			if err := fn(a); err != nil {
				return err
			}
			after = a.Key
			return nil
		})
	}, g.cfg.Timeout)
}

func (g *GC) delete(ctx context.Context, key string) error {
	return retry(ctx, func(actx context.Context) error { return g.store.Delete(actx, key) }, g.cfg.Timeout)
}

// references returns every segment key that must stay, and the dedup
// state object each checkpoint names: those named by a
// checkpoint manifest of any pchannel or retired from one (a retired
// list, or a record's inline Retired) less than OrphanAge before now, by a
// snapshot not yet released, or by a restore job that is running or done
// (docs/protocol.md "Flush" rules 3 and 8, "Snapshots" rules 1 and 2).
func (g *GC) references(ctx context.Context, now time.Time) (map[string]bool, error) {
	refs := make(map[string]bool)
	pchannels, err := g.pchannels(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range pchannels {
		cp, _, err := readCheckpoint(ctx, g.checkpoints, p, g.cfg.Timeout)
		if err != nil {
			return nil, err
		}
		for _, ref := range cp.Segments {
			refs[ref.Key] = true
		}
		if cp.DedupState != "" {
			refs[cp.DedupState] = true
		}
		for _, ret := range cp.Retired {
			if !g.expired(ret.RetiredAt, now) {
				refs[ret.Key] = true
			}
		}
	}
	// The retired lists only after every checkpoint: a compaction writes
	// its list before the CAS that takes the files out of the manifest,
	// so a manifest read without them was written after their list, which
	// this listing then finds. Listed first, a list written after it
	// could belong to a CAS that lands before the checkpoint read.
	lists, err := g.retired.load(ctx, g.store, RetiredListsPrefix(g.cfg.Layout), g.cfg.Timeout)
	if err != nil {
		return nil, err
	}
	for _, rl := range lists {
		if !g.expired(rl.RetiredAt, now) {
			for _, key := range rl.Keys {
				refs[key] = true
			}
		}
	}
	snaps, err := listRecords[Snapshot](ctx, g.store, SnapshotsPrefix(g.cfg.Layout), g.cfg.Timeout)
	if err != nil {
		return nil, err
	}
	for _, s := range snaps {
		if s.root() {
			for _, ref := range s.Segments {
				refs[ref.Key] = true
			}
		}
	}
	jobs, err := listRecords[RestoreJob](ctx, g.store, RestoresPrefix(g.cfg.Layout), g.cfg.Timeout)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if j.root() {
			for _, ref := range j.Segments {
				refs[ref.Key] = true
			}
		}
	}
	return refs, nil
}
