package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/cas"
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
// "Flush, truncation, GC" rule 2) through cas.Update: PutIfMatch with the
// base's ETag, or PutIfAbsent when there was no record, the first time
// without reading the record again. A conflict or a reply that never came
// is settled by re-reading the record and looking for this flush's segment
// IDs (holdsFlush, as cas.Landed), never by a blind retry: only while the
// record still has the base ETag (so a lost write has not applied and,
// being conditional on that ETag, can never apply after a resend lands) is
// the identical write sent again. A record that moved only by manifest
// edits (compaction, GC), with no flush in between, takes the round on top
// of it. No attempt goes out after deadline (FlushConfig.CommitWithin): the
// round is then given up as a lost race, unless the record shows an
// earlier attempt landed (cas.Update reads it once more, even after ctx
// ended, for up to four request timeouts). It returns the record written.
func (f *Flusher) casCheckpoint(ctx context.Context, r *round, next segmentlog.Checkpoint, flushID string, deadline time.Time) (segmentlog.Checkpoint, error) {
	p := f.cfg.PChannel
	if next.C <= r.base.C {
		return segmentlog.Checkpoint{}, fmt.Errorf("flush %s: internal error: new checkpoint %d not above %d", p, next.C, r.base.C)
	}
	tooLate := func() error {
		// Too late to name the files: GC may have taken them for orphans.
		return fmt.Errorf("flush %s: checkpoint %d→%d: %w (its files were written more than %v ago; left to GC)", p, r.base.C, next.C, ErrLostRace, f.cfg.CommitWithin)
	}
	rebases := 0
	decide := func(cur cas.Record[segmentlog.Checkpoint]) (segmentlog.Checkpoint, error) {
		switch {
		case time.Now().After(deadline):
			return segmentlog.Checkpoint{}, tooLate()
		case cur.ETag == r.etag:
			// The base still (or the first round): send the round; after a
			// write of unknown outcome, the identical write again.
			return next, nil
		case cur.Exists && sameFlushState(cur.Value, r.base) && rebases < f.cfg.MaxRounds:
			// Only the manifest changed (compaction, a reclaimed vchannel,
			// GC retiring trimmed files or pruning inline Retired): no
			// flush came between, so the round's WAL range and folded
			// state still follow on from cur. Our
			// earlier writes, conditional on an ETag the record has left,
			// can never apply; commit the round on top of cur instead.
			rebases++
			r.base, r.etag = cur.Value, cur.ETag
			next = r.checkpoint(p, flushID, refsOf(next, flushID), next.UpdatedAt)
			return next, nil
		default:
			return segmentlog.Checkpoint{}, fmt.Errorf("flush %s: checkpoint %d→%d: %w (now at %d, version %d)", p, r.base.C, next.C, ErrLostRace, cur.Value.C, cur.Value.Version)
		}
	}
	landed := func(cur cas.Record[segmentlog.Checkpoint]) bool {
		wrote := len(next.Segments) > len(r.base.Segments)
		if holdsFlush(cur.Value, flushID, next, wrote) {
			return true
		}
		if !wrote || cur.Value.C < next.C {
			return false // no record below the round's c holds it
		}
		// Compaction may have merged the round's files away since (it
		// never merges the current FlushID's, but a later flush may have
		// come first): their retired list tells. It runs when ctx may
		// have ended (cas.Update settles after it), so on its own clock.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 4*f.cfg.GetTimeout)
		defer cancel()
		return retiredHoldsFlush(lctx, f.store, f.cfg.Layout, p, flushID, deadline.Add(-f.cfg.CommitWithin), f.cfg.GetTimeout)
	}
	// The deadline ends the update as a cancellation would: no write after it.
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	policy := cas.Policy{Timeout: f.cfg.GetTimeout, Settle: 4 * f.cfg.GetTimeout, Backoff: storeBackoff}
	base := cas.Record[segmentlog.Checkpoint]{Value: r.base, ETag: r.etag, Exists: r.etag != ""}
	rec, err := cas.Update(dctx, f.store, f.cfg.Layout.Checkpoint(p), recordCodec[segmentlog.Checkpoint](), policy, decide,
		cas.From(base), cas.Landed(landed))
	switch {
	case err == nil:
		return rec.Value, nil
	case errors.Is(err, ErrLostRace):
		return segmentlog.Checkpoint{}, err
	case dctx.Err() != nil && ctx.Err() == nil:
		return segmentlog.Checkpoint{}, fmt.Errorf("%w: %w", tooLate(), err)
	}
	return segmentlog.Checkpoint{}, fmt.Errorf("flush %s: checkpoint CAS: %w", p, err)
}

// holdsFlush reports whether cp contains the flush that wrote next: the
// record names it (FlushID), or, once later flushes moved on, its segment
// files are in the manifest or in the record's inline Retired list (the
// retired lists, which replaced it, casCheckpoint reads itself). A flush
// with no segment files that a later flush already passed cannot be told
// from a lost race; it is reported as one, and no data depends on it.
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
		// Compaction may have merged them away since: a record written
		// before retired lists names them inline.
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
