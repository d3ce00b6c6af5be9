package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
	"golang.org/x/sync/errgroup"
)

// commitRound writes the round's segment files and advances the checkpoint
// by CAS. It fails with ErrLostRace when another flusher moved the
// checkpoint first (the files written are then orphans).
func (f *Flusher) commitRound(ctx context.Context, r *round) (Round, error) {
	flushID := f.cfg.NewID()
	// Real time: the deadline bounds the time from the first PUT to the
	// last CAS attempt, measured against the store's LastModified by GC.
	deadline := time.Now().Add(f.cfg.CommitWithin)
	vs := r.vchannels()
	refs := make([]segmentlog.SegmentRef, len(vs))
	// Encode and PUT the vchannels' files in parallel, a few at a time.
	var g errgroup.Group
	g.SetLimit(f.cfg.WriteParallel)
	for i, v := range vs {
		g.Go(func() (err error) {
			refs[i], err = f.writeSegment(ctx, v, r.groups[v], flushID)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return Round{}, err
	}
	fold, err := f.writeDedupState(ctx, r, flushID)
	if err != nil {
		return Round{}, err
	}
	next, err := f.casCheckpoint(ctx, r, r.checkpoint(f.cfg.PChannel, flushID, refs, f.cfg.Now()), flushID, deadline)
	if err != nil {
		return Round{}, err
	}
	f.dedup = dedupCache{flushID: next.FlushID, c: next.C, fold: fold}
	if old := r.base.DedupState; old != "" && old != r.dedupState {
		// No checkpoint names it any more. A takeover that read the older
		// checkpoint and meets it gone recovers again from the new one.
		f.deleteQuietly(ctx, old)
	}
	res := Round{FlushID: flushID, From: r.base.C, To: next.C, Segments: refs, Messages: r.messages, WALBytes: r.walBytes, Version: next.Version}
	f.log.Debug("flushed", "from", res.From, "to", res.To, "segments", len(refs), "messages", r.messages, "wal_bytes", r.walBytes)
	if f.cfg.Positions != nil {
		f.advancePositions(ctx, r, vs, next.C)
	}
	if f.cfg.OnRound != nil {
		f.cfg.OnRound(res)
	}
	return res, nil
}

// advancePositions tells Positions that every message below c of the
// round's vchannels is in segments, a few vchannels at a time. The
// pchannel-wide messages (vchannel "": fences, timeticks) have no
// position to record.
func (f *Flusher) advancePositions(ctx context.Context, r *round, vs []string, c uint64) {
	var g errgroup.Group
	g.SetLimit(f.cfg.WriteParallel)
	for _, v := range vs {
		if v == "" {
			continue
		}
		rows := r.groups[v]
		tick := rows[len(rows)-1].TimeTick
		g.Go(func() error {
			if err := f.cfg.Positions.AdvanceFlushed(ctx, v, segmentlog.MessageID{Offset: c}, tick); err != nil {
				f.log.Warn("flushed position not recorded; the next round that flushes this vchannel records it", "vchannel", v, "err", err)
			}
			return nil
		})
	}
	g.Wait()
}

// writeSegment encodes one vchannel's messages and stores them under a key
// no other flush can use (it holds flushID). A transient failure resends the
// identical bytes; ErrExists after a resend is checked by reading back.
func (f *Flusher) writeSegment(ctx context.Context, vchannel string, rows []segmentlog.Delivery, flushID string) (segmentlog.SegmentRef, error) {
	data, crc, err := encodeSegment(f.cfg.PChannel, vchannel, rows)
	if err != nil {
		return segmentlog.SegmentRef{}, fmt.Errorf("flush %s: %w", f.cfg.PChannel, err)
	}
	key := SegmentKey(f.cfg.Layout, f.cfg.PChannel, vchannel, rows[0].ID.Offset, rows[len(rows)-1].ID.Offset, flushID)
	if err := putImmutable(ctx, f.store, key, data, map[string]string{crcMeta: strconv.FormatUint(uint64(crc), 10)}, f.cfg.PutTimeout); err != nil {
		return segmentlog.SegmentRef{}, fmt.Errorf("flush %s: write segment: %w", f.cfg.PChannel, err)
	}
	return segmentlog.SegmentRef{
		VChannel:    vchannel,
		Key:         key,
		FirstOffset: rows[0].ID.Offset,
		LastOffset:  rows[len(rows)-1].ID.Offset,
		Messages:    int64(len(rows)),
		Bytes:       int64(len(data)),
	}, nil
}

// putImmutable creates key with data by PutIfAbsent, resending the same
// bytes on transient failures. If the key exists after a resend it must
// hold exactly data (our earlier attempt landed); otherwise it is an error.
func putImmutable(ctx context.Context, store objstore.Store, key string, data []byte, meta map[string]string, timeout time.Duration) error {
	err := retry(ctx, func(actx context.Context) error {
		_, err := store.PutIfAbsent(actx, key, data, meta)
		return err
	}, timeout)
	if !errors.Is(err, objstore.ErrExists) {
		return err
	}
	var cur objstore.Object
	if gerr := retry(ctx, func(actx context.Context) error {
		var err error
		cur, err = store.Get(actx, key)
		return err
	}, timeout); gerr != nil {
		return fmt.Errorf("%s exists and cannot be read back: %w", key, gerr)
	}
	if !bytes.Equal(cur.Body, data) {
		return fmt.Errorf("%s exists with other bytes: %w", key, objstore.ErrExists)
	}
	return nil
}

// casCheckpoint writes next over the round's base checkpoint (docs/protocol.md
// "Flush, truncation, GC" rule 2): PutIfMatch with the base's ETag, or
// PutIfAbsent when there was no record. A reply that never came is resolved
// by re-reading the record and looking for this flush's segment IDs, never
// by a blind retry: only while the record still has the base ETag (so the
// lost write has not applied and, being conditional on that ETag, can never
// apply after a resend lands) is the identical write sent again. A record
// that moved only by manifest edits (compaction, GC), with no flush in
// between, takes the round on top of it. No attempt goes out after
// deadline (FlushConfig.CommitWithin): the round is then given up as a lost
// race, unless the record shows an earlier attempt landed. It returns the
// record written.
func (f *Flusher) casCheckpoint(ctx context.Context, r *round, next segmentlog.Checkpoint, flushID string, deadline time.Time) (segmentlog.Checkpoint, error) {
	if next.C <= r.base.C {
		return segmentlog.Checkpoint{}, fmt.Errorf("flush %s: internal error: new checkpoint %d not above %d", f.cfg.PChannel, next.C, r.base.C)
	}
	body, err := json.Marshal(next)
	if err != nil {
		return segmentlog.Checkpoint{}, fmt.Errorf("flush %s: encode checkpoint: %w", f.cfg.PChannel, err)
	}
	key := f.cfg.Layout.Checkpoint(f.cfg.PChannel)
	rebases := 0
	for attempt := 0; ; attempt++ {
		if time.Now().After(deadline) {
			// Too late to name the files: GC may have taken them for
			// orphans. An attempt sent earlier may still have landed.
			if cur, _, err := f.readBack(ctx); err == nil && holdsFlush(cur, flushID, next, len(next.Segments) > len(r.base.Segments)) {
				return next, nil
			}
			return segmentlog.Checkpoint{}, fmt.Errorf("flush %s: checkpoint %d→%d: %w (its files were written more than %v ago; left to GC)", f.cfg.PChannel, r.base.C, next.C, ErrLostRace, f.cfg.CommitWithin)
		}
		actx, cancel := context.WithTimeout(ctx, f.cfg.GetTimeout)
		if r.etag == "" {
			_, err = f.store.PutIfAbsent(actx, key, body, nil)
		} else {
			_, err = f.store.PutIfMatch(actx, key, body, r.etag)
		}
		cancel()
		if err == nil {
			return next, nil
		}
		// A cancelled or timed-out call may have landed too.
		unknown := objstore.IsRetryable(err) || ctx.Err() != nil
		if !unknown && !errors.Is(err, objstore.ErrConflict) && !errors.Is(err, objstore.ErrExists) {
			return segmentlog.Checkpoint{}, fmt.Errorf("flush %s: checkpoint CAS: %w", f.cfg.PChannel, err)
		}
		// Conflict, or an outcome we did not hear: look at the record, even
		// if the caller gave up meanwhile, so that what we report is true.
		cur, etag, rerr := f.readBack(ctx)
		if rerr != nil {
			return segmentlog.Checkpoint{}, fmt.Errorf("flush %s: checkpoint CAS outcome unknown (%v) and the record cannot be read: %w", f.cfg.PChannel, err, rerr)
		}
		switch {
		case holdsFlush(cur, flushID, next, len(next.Segments) > len(r.base.Segments)):
			return next, nil // ours landed; the reply was lost
		case ctx.Err() != nil:
			return segmentlog.Checkpoint{}, fmt.Errorf("flush %s: checkpoint CAS: %w", f.cfg.PChannel, ctx.Err())
		case etag == r.etag && unknown:
			// Not applied (yet): resend the identical conditional write.
			if !sleep(ctx, backoff(attempt)) {
				return segmentlog.Checkpoint{}, fmt.Errorf("flush %s: checkpoint CAS: %w", f.cfg.PChannel, ctx.Err())
			}
		case etag != r.etag && sameFlushState(cur, r.base) && rebases < f.cfg.MaxRounds:
			// Only the manifest changed (compaction, a reclaimed vchannel,
			// GC pruning Retired): no flush came between, so the round's
			// WAL range and folded state still follow on from cur. Our
			// write, conditional on an ETag the record has left, can never
			// apply; commit the round on top of cur instead.
			rebases++
			r.base, r.etag = cur, etag
			next = r.checkpoint(f.cfg.PChannel, flushID, refsOf(next, flushID), next.UpdatedAt)
			if body, err = json.Marshal(next); err != nil {
				return segmentlog.Checkpoint{}, fmt.Errorf("flush %s: encode checkpoint: %w", f.cfg.PChannel, err)
			}
		default:
			return segmentlog.Checkpoint{}, fmt.Errorf("flush %s: checkpoint %d→%d: %w (now at %d, version %d)", f.cfg.PChannel, r.base.C, next.C, ErrLostRace, cur.C, cur.Version)
		}
	}
}

// readBack reads the checkpoint to settle a CAS outcome; once ctx has
// ended it still tries for a few request timeouts.
func (f *Flusher) readBack(ctx context.Context) (segmentlog.Checkpoint, string, error) {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 4*f.cfg.GetTimeout)
		defer cancel()
	}
	return f.readCheckpoint(ctx)
}

// holdsFlush reports whether cp contains the flush that wrote next: the
// record names it (FlushID), or, once later flushes moved on, its segment
// files are in the manifest. A flush with no segment files that a later
// flush already passed cannot be told from a lost race; it is reported as
// one, and no data depends on it.
func holdsFlush(cp segmentlog.Checkpoint, flushID string, next segmentlog.Checkpoint, wroteSegments bool) bool {
	if cp.FlushID == flushID {
		return true
	}
	if wroteSegments {
		for _, ref := range cp.Segments {
			if flushIDOf(ref.Key) == flushID {
				return true
			}
		}
		// Compaction may have merged them away since (it never merges the
		// current FlushID's files, but a later flush may have come first).
		for _, ret := range cp.Retired {
			if flushIDOf(ret.Key) == flushID {
				return true
			}
		}
	}
	return false
}

// sameFlushState reports whether cp continues from base as far as flushing
// goes: the same flush wrote both (same FlushID, C and MaxTerm), so only
// their manifests may differ.
func sameFlushState(cp, base segmentlog.Checkpoint) bool {
	return cp.FlushID == base.FlushID && cp.C == base.C && cp.MaxTerm == base.MaxTerm && cp.Version > base.Version
}

// refsOf returns the refs of cp's manifest that flush flushID wrote.
func refsOf(cp segmentlog.Checkpoint, flushID string) []segmentlog.SegmentRef {
	var out []segmentlog.SegmentRef
	for _, ref := range cp.Segments {
		if flushIDOf(ref.Key) == flushID {
			out = append(out, ref)
		}
	}
	return out
}

// dedupCache is the idempotency window as of the checkpoint (C, FlushID)
// this flusher last committed, so that its next round folds on from memory
// instead of reading the dedup state object back.
type dedupCache struct {
	flushID string
	c       uint64
	fold    *segmentlog.DedupFold
}

// writeDedupState folds the round's keyed messages into the window as of
// its base checkpoint and writes the result as the dedup state object the
// round's checkpoint names (none when the window is empty). The window as
// of the base comes from memory when this flusher wrote the base, else
// from the base's object (or inline Dedup); it fails with ErrLostRace when
// that object is gone, because the checkpoint moved on.
func (f *Flusher) writeDedupState(ctx context.Context, r *round, flushID string) (*segmentlog.DedupFold, error) {
	fold := f.dedup.fold
	if fold == nil || f.dedup.flushID != r.base.FlushID || f.dedup.c != r.base.C {
		err := retry(ctx, func(actx context.Context) error {
			var err error
			fold, err = segmentlog.LoadDedupFold(actx, f.store, r.base, f.cfg.DedupWindow, f.cfg.DedupMaxKeys, f.cfg.Now())
			return err
		}, f.cfg.GetTimeout)
		if errors.Is(err, segmentlog.ErrDedupStateGone) {
			return nil, fmt.Errorf("flush %s: %w: %w", f.cfg.PChannel, ErrLostRace, err)
		}
		if err != nil {
			return nil, fmt.Errorf("flush %s: %w", f.cfg.PChannel, err)
		}
	}
	// The fold is this round's from here on: if the round fails, the
	// window in memory is no longer the committed one.
	f.dedup = dedupCache{}
	now := f.cfg.Now()
	for _, k := range r.keyed {
		fold.Add(k.key, k.id, k.tick, now)
	}
	r.dedupState = ""
	if state := fold.State(); state != nil {
		key := f.cfg.Layout.DedupState(f.cfg.PChannel, r.next, flushID)
		if err := putImmutable(ctx, f.store, key, state, nil, f.cfg.PutTimeout); err != nil {
			return nil, fmt.Errorf("flush %s: write dedup state: %w", f.cfg.PChannel, err)
		}
		r.dedupState = key
	}
	return fold, nil
}

// deleteQuietly deletes key, best effort: a failure leaves an object no
// record names (logged).
func (f *Flusher) deleteQuietly(ctx context.Context, key string) {
	if err := retry(ctx, func(actx context.Context) error { return f.store.Delete(actx, key) }, f.cfg.GetTimeout); err != nil {
		f.log.Warn("old dedup state not deleted", "key", key, "err", err)
	}
}
