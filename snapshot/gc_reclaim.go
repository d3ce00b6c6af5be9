package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// Reclaimer is the vchannel registry as GC uses it to reclaim the data of
// dropped vchannels (PROTOCOL.md "Snapshots, restore, drop" rule 1); the
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
// Removing is idempotent, so every attempt (after a lost race or an
// unknown outcome) reads the record and filters it again.
func (g *GC) dropRefs(ctx context.Context, pchannel string, vchannels []string) (int, error) {
	key := g.cfg.Layout.Checkpoint(pchannel)
	removed := 0
	for attempt := 0; attempt < maxUpdateRounds; attempt++ {
		cp, etag, err := readCheckpoint(ctx, g.store, g.cfg.Layout, pchannel, g.cfg.Timeout)
		if err != nil {
			return removed, fmt.Errorf("gc %s: %w", pchannel, err)
		}
		keep := slices.DeleteFunc(slices.Clone(cp.Segments), func(r segmentlog.SegmentRef) bool {
			return slices.Contains(vchannels, r.VChannel)
		})
		if len(keep) == len(cp.Segments) {
			return removed, nil // nothing (left) to remove
		}
		n := len(cp.Segments) - len(keep)
		cp.Segments, cp.Version, cp.UpdatedAt = keep, cp.Version+1, g.cfg.Now().UTC()
		body, err := json.Marshal(cp)
		if err != nil {
			return removed, err
		}
		actx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
		_, err = g.store.PutIfMatch(actx, key, body, etag)
		cancel()
		switch {
		case err == nil:
			g.log.Info("reclaimed dropped vchannels", "pchannel", pchannel, "vchannels", vchannels, "segments", n)
			return removed + n, nil
		case errors.Is(err, objstore.ErrConflict) || objstore.IsRetryable(err):
			// A flusher moved the checkpoint, or the outcome is unknown:
			// read again and filter what is there.
			if !sleep(ctx, backoff(attempt)) {
				return removed, ctx.Err()
			}
		default:
			return removed, fmt.Errorf("gc %s: checkpoint CAS: %w", pchannel, err)
		}
	}
	return removed, fmt.Errorf("gc %s: lost the checkpoint CAS race %d times", pchannel, maxUpdateRounds)
}
