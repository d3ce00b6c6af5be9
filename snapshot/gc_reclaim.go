package snapshot

import (
	"context"
	"fmt"
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

// expired reports whether a retired file's grace is over at now.
func (g *GC) expired(ret segmentlog.RetiredSegment, now time.Time) bool {
	return !now.Before(ret.RetiredAt.Add(g.cfg.OrphanAge))
}

// PruneRetired drops from pchannel's checkpoint the Retired entries whose
// grace (OrphanAge after RetiredAt) is over; their files are then ordinary
// orphans, which CollectOrphans deletes. The CAS is conflict-safe: after a
// lost race or an unknown outcome, update reads the record and filters it
// again. C and the manifest stay as they are. It returns how many entries
// it dropped.
func (g *GC) PruneRetired(ctx context.Context, pchannel string) (int, error) {
	now := g.cfg.Now()
	pruned := 0
	_, err := update(ctx, g.store, g.cfg.Layout.Checkpoint(pchannel), g.cfg.Timeout, func(cp segmentlog.Checkpoint, exists bool) (segmentlog.Checkpoint, error) {
		keep := slices.DeleteFunc(slices.Clone(cp.Retired), func(r segmentlog.RetiredSegment) bool { return g.expired(r, now) })
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
