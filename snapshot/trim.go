package snapshot

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/cas"
	"github.com/cairnlog/cairn/segmentlog"
)

// TrimTimeout bounds one store request of Trim.
const TrimTimeout = 5 * time.Second

// Trim moves the trim point of pchannel p up to before (docs/protocol.md
// "Trim and retention" rule 1): from then on no reader delivers a message
// with an ID below it, and GC may delete what lies wholly below it. The
// checkpoint record carries the point and is written by CAS (with
// PutIfAbsent when p has none yet); a lost race reads and decides again. A
// point at or below the current one writes nothing: Trim is idempotent and
// monotone. It returns the record as stored, whose Trim is the pchannel's
// earliest readable position. Checking before against the tail is the
// caller's business. Safe for concurrent use.
func Trim(ctx context.Context, store objstore.Store, l segmentlog.Layout, p string, before segmentlog.MessageID, now time.Time) (segmentlog.Checkpoint, error) {
	if err := segmentlog.ValidateName("pchannel", p); err != nil {
		return segmentlog.Checkpoint{}, fmt.Errorf("trim: %w", err)
	}
	cp, err := update(ctx, store, l.Checkpoint(p), TrimTimeout, func(cur segmentlog.Checkpoint, exists bool) (segmentlog.Checkpoint, error) {
		if !exists {
			cur = segmentlog.Checkpoint{Format: segmentlog.CheckpointFormat, PChannel: p}
		}
		next, changed := cur.Trimmed(before)
		if !changed {
			return cur, cas.ErrUnchanged
		}
		next.UpdatedAt = now.UTC()
		return next, nil
	})
	if err != nil {
		return segmentlog.Checkpoint{}, fmt.Errorf("trim %s before %v: %w", p, before, err)
	}
	if !stored(cp) {
		cp = segmentlog.Checkpoint{Format: segmentlog.CheckpointFormat, PChannel: p, Trim: before}
	}
	return cp, nil
}

// stored tells a stored record from the zero value update returns for an
// absent one with cas.ErrUnchanged.
func stored(cp segmentlog.Checkpoint) bool { return cp.Format != 0 }

// TrimPoints gives GC the vchannels' own trim points (the coordinator's
// registry provides it). Safe for concurrent use.
type TrimPoints interface {
	// VChannelTrims returns the trim point of every vchannel bound to
	// pchannel that has one.
	VChannelTrims(ctx context.Context, pchannel string) (map[string]segmentlog.MessageID, error)
}

// wholly reports whether every message of ref lies below the trim point:
// its last offset is below the point's offset (a message at the point's
// offset may lie at or above its index).
func whollyTrimmed(ref segmentlog.SegmentRef, trim segmentlog.MessageID) bool {
	return ref.LastOffset < trim.Offset
}

// RetireTrimmed moves the segment files of pchannel's manifest that lie
// wholly below a trim point (the pchannel's, or their vchannel's through
// GCConfig.Trims) out of the manifest, by CAS (docs/protocol.md "Trim and
// retention" rule 4). It writes them as a retired list first, so that from
// there the retirement grace protects them for readers and snapshots cut
// from an older manifest; CollectOrphans deletes them after it unless a
// snapshot or a restore job names them: snapshots always win. A file the
// list does not name (trimmed after the record was read) stays for the
// next pass. C and the rest of the record stay as they are. It returns how
// many references it retired.
func (g *GC) RetireTrimmed(ctx context.Context, pchannel string) (int, error) {
	var vtrims map[string]segmentlog.MessageID
	if g.cfg.Trims != nil {
		var err error
		if vtrims, err = g.cfg.Trims.VChannelTrims(ctx, pchannel); err != nil {
			return 0, fmt.Errorf("gc %s: vchannel trim points: %w", pchannel, err)
		}
	}
	trimmed := func(cp segmentlog.Checkpoint, ref segmentlog.SegmentRef) bool {
		return whollyTrimmed(ref, cp.Trim) || (ref.VChannel != "" && whollyTrimmed(ref, vtrims[ref.VChannel]))
	}
	cp, _, err := readCheckpoint(ctx, g.checkpoints, pchannel, g.cfg.Timeout)
	if err != nil {
		return 0, fmt.Errorf("gc %s: retire trimmed: %w", pchannel, err)
	}
	listed := make(map[string]bool)
	var keys []string
	for _, ref := range cp.Segments {
		if trimmed(cp, ref) {
			listed[ref.Key] = true
			keys = append(keys, ref.Key)
		}
	}
	if len(keys) == 0 {
		return 0, nil
	}
	now := g.cfg.Now()
	if _, err := writeRetiredList(ctx, g.store, g.cfg.Layout, pchannel, keys, now, uuid.Must(uuid.NewV7()).String(), g.cfg.Timeout); err != nil {
		return 0, fmt.Errorf("gc %s: retire trimmed: %w", pchannel, err)
	}
	retired := 0
	_, err = update(ctx, g.store, g.cfg.Layout.Checkpoint(pchannel), g.cfg.Timeout, func(cp segmentlog.Checkpoint, exists bool) (segmentlog.Checkpoint, error) {
		retired = 0
		if !exists {
			return cp, cas.ErrUnchanged
		}
		keep := make([]segmentlog.SegmentRef, 0, len(cp.Segments))
		for _, ref := range cp.Segments {
			if listed[ref.Key] && trimmed(cp, ref) {
				retired++
				continue
			}
			keep = append(keep, ref)
		}
		if retired == 0 {
			return cp, cas.ErrUnchanged
		}
		if len(keep) == 0 {
			keep = nil
		}
		next := cp
		next.Segments, next.Version, next.UpdatedAt = keep, cp.Version+1, now.UTC()
		return next, nil
	})
	if err != nil {
		return 0, fmt.Errorf("gc %s: retire trimmed: %w", pchannel, err)
	}
	if retired > 0 {
		g.log.Info("retired trimmed segments", "pchannel", pchannel, "segments", retired)
	}
	return retired, nil
}
