package snapshot

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cairnlog/cairn/infra/objstore/cas"
	"github.com/cairnlog/cairn/segmentlog"
)

// Reclaimer is the vchannel registry as GC uses it to reclaim the data of
// dropped vchannels (docs/protocol.md "Snapshots, restore, drop" rule 1); the
// coordinator's registry provides it. Safe for concurrent use.
type Reclaimer interface {
	// Dropped lists the vchannels bound to pchannel that are dropped or
	// reclaiming.
	Dropped(ctx context.Context, pchannel string) ([]string, error)
	// MarkReclaiming moves a dropped vchannel to reclaiming by CAS; it
	// reports false, with no error, while a snapshot pins it. A vchannel
	// already reclaiming reports true.
	MarkReclaiming(ctx context.Context, vchannel string) (bool, error)
}

// ReclaimDropped removes the segments of pchannel's dropped, unpinned
// vchannels from its checkpoint manifest, after moving each to reclaiming
// (which no pin can follow). The files become orphans and CollectOrphans
// deletes them after OrphanAge, unless a restore job still references them.
// The checkpoint's C and everything else stay as they are. It returns how
// many references it removed; without a Reclaimer it does nothing.
func (g *GC) ReclaimDropped(ctx context.Context, pchannel string) (int, error) {
	if g.cfg.Reclaimer == nil {
		return 0, nil
	}
	dropped, err := g.cfg.Reclaimer.Dropped(ctx, pchannel)
	if err != nil {
		return 0, fmt.Errorf("gc %s: dropped vchannels: %w", pchannel, err)
	}
	var gone []string
	for _, v := range dropped {
		ok, err := g.cfg.Reclaimer.MarkReclaiming(ctx, v)
		if err != nil {
			return 0, fmt.Errorf("gc %s: reclaim %s: %w", pchannel, v, err)
		}
		if ok {
			gone = append(gone, v)
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	return g.dropRefs(ctx, pchannel, gone)
}

// dropRefs removes the references of vchannels from the checkpoint by CAS.
// Removing is idempotent, so after a lost race or an unknown outcome update
// reads the record and filters it again; C and the rest stay as they are.
func (g *GC) dropRefs(ctx context.Context, pchannel string, vchannels []string) (int, error) {
	removed := 0
	_, err := update(ctx, g.store, g.cfg.Layout.Checkpoint(pchannel), g.cfg.Timeout, func(cp segmentlog.Checkpoint, exists bool) (segmentlog.Checkpoint, error) {
		keep := slices.DeleteFunc(slices.Clone(cp.Segments), func(r segmentlog.SegmentRef) bool {
			return slices.Contains(vchannels, r.VChannel)
		})
		removed = len(cp.Segments) - len(keep)
		if !exists || removed == 0 {
			return cp, cas.ErrUnchanged
		}
		cp.Segments, cp.Version, cp.UpdatedAt = keep, cp.Version+1, g.cfg.Now().UTC()
		return cp, nil
	})
	if err != nil {
		return 0, fmt.Errorf("gc %s: %w", pchannel, err)
	}
	if removed > 0 {
		g.log.Info("reclaimed dropped vchannels", "pchannel", pchannel, "vchannels", vchannels, "segments", removed)
	}
	return removed, nil
}

// expired reports whether the grace of a file retired at retiredAt is over
// at now.
func (g *GC) expired(retiredAt, now time.Time) bool {
	return !now.Before(retiredAt.Add(g.cfg.OrphanAge))
}

// PruneRetired ends the retirement of pchannel's files whose grace
// (OrphanAge after RetiredAt) is over: it deletes their retired lists, and
// drops such entries from the checkpoint's inline Retired list (records
// written before retired lists existed) by CAS. Their files are then
// ordinary orphans, which CollectOrphans deletes unless a manifest, a
// snapshot or a restore job names them. The CAS is conflict-safe: after a
// lost race or an unknown outcome, update reads the record and filters it
// again; C and the manifest stay as they are, and a record with no expired
// entry is not written. It returns how many files' retirement it ended.
func (g *GC) PruneRetired(ctx context.Context, pchannel string) (int, error) {
	now := g.cfg.Now()
	lists, err := g.retired.load(ctx, g.store, retiredListPrefix(g.cfg.Layout, pchannel), g.cfg.Timeout)
	if err != nil {
		return 0, fmt.Errorf("gc %s: prune retired: %w", pchannel, err)
	}
	ended := 0
	for _, key := range slices.Sorted(maps.Keys(lists)) {
		if !g.expired(lists[key].RetiredAt, now) {
			continue
		}
		if err := g.delete(ctx, key); err != nil {
			return ended, fmt.Errorf("gc %s: prune retired: %w", pchannel, err)
		}
		g.retired.forget(key)
		ended += len(lists[key].Keys)
	}
	pruned, err := g.pruneInline(ctx, pchannel, now)
	return ended + pruned, err
}

// pruneInline drops the expired entries of pchannel's inline Retired list.
func (g *GC) pruneInline(ctx context.Context, pchannel string, now time.Time) (int, error) {
	cp, _, err := readCheckpoint(ctx, g.checkpoints, pchannel, g.cfg.Timeout)
	if err != nil {
		return 0, fmt.Errorf("gc %s: prune retired: %w", pchannel, err)
	}
	if !slices.ContainsFunc(cp.Retired, func(r segmentlog.RetiredSegment) bool { return g.expired(r.RetiredAt, now) }) {
		return 0, nil // the usual case: nothing inline, no write
	}
	pruned := 0
	_, err = update(ctx, g.store, g.cfg.Layout.Checkpoint(pchannel), g.cfg.Timeout, func(cp segmentlog.Checkpoint, exists bool) (segmentlog.Checkpoint, error) {
		keep := slices.DeleteFunc(slices.Clone(cp.Retired), func(r segmentlog.RetiredSegment) bool { return g.expired(r.RetiredAt, now) })
		pruned = len(cp.Retired) - len(keep)
		if !exists || pruned == 0 {
			return cp, cas.ErrUnchanged
		}
		if len(keep) == 0 {
			keep = nil
		}
		cp.Retired, cp.Version, cp.UpdatedAt = keep, cp.Version+1, now.UTC()
		return cp, nil
	})
	if err != nil {
		return 0, fmt.Errorf("gc %s: prune retired: %w", pchannel, err)
	}
	return pruned, nil
}
