package snapshot

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// round is the WAL above one checkpoint, read through the reading rule and
// grouped per vchannel: what one checkpoint CAS will commit. Not safe for
// concurrent use.
type round struct {
	base segmentlog.Checkpoint // the checkpoint the round starts from
	etag string                // its ETag ("" when there is no record yet)

	filter      segmentlog.TermFilter // seeded with base.MaxTerm
	next        uint64                // first slot not read: the new checkpoint
	slots       int
	walBytes    int64
	full        bool // stopped at MaxSlots or MaxBytes, not at an empty slot
	firstTick   uint64
	lastTick    uint64
	termChanges []segmentlog.TermChange
	// keyed lists the delivered keyed messages, in order: the window as
	// of the new checkpoint is the base's with these folded in, computed
	// only when the round commits (commitRound), so that a poll that
	// flushes nothing never touches the window.
	keyed      []keyedAck
	dedupState string                           // the dedup state object the round's checkpoint names
	groups     map[string][]segmentlog.Delivery // by vchannel; "" = pchannel-wide
	messages   int64
}

// readRound reads the checkpoint and the WAL above it, up to the first empty
// slot or the round limits. It continues prev (a round Run read earlier) if
// the checkpoint has not moved since.
func (f *Flusher) readRound(ctx context.Context, prev *round) (*round, error) {
	cp, etag, err := f.readCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	r := prev
	if r == nil || r.etag != etag || r.base.C != cp.C {
		r = &round{
			base:   cp,
			etag:   etag,
			filter: segmentlog.TermFilter{Max: cp.MaxTerm},
			next:   cp.C,
			groups: make(map[string][]segmentlog.Delivery),
		}
	}
	sr := segmentlog.NewSlotReader(f.store, f.cfg.Layout, f.cfg.PChannel, r.next, f.readAhead(r.next), f.cfg.GetTimeout)
	defer sr.Close()
	for {
		if r.slots >= f.cfg.MaxSlots || r.walBytes >= f.cfg.MaxBytes {
			r.full = true
			return r, nil
		}
		s, err := sr.Next(ctx)
		if err != nil {
			return nil, fmt.Errorf("flush %s: %w", f.cfg.PChannel, err)
		}
		if s.Missing {
			return r, nil // the first empty slot: the checkpoint never passes it
		}
		r.take(&s)
	}
}

// readAhead is the read-ahead of a round reading from next: ReadAhead, cut
// to the slots below the tail (and one probe) when Tail knows it, so that a
// look at a short backlog does not GET a read-ahead's worth of empty slots
// past the tail. A hint only: the round still reads to the first empty
// slot.
func (f *Flusher) readAhead(next uint64) int {
	if f.cfg.Tail == nil {
		return f.cfg.ReadAhead
	}
	tail, ok := f.cfg.Tail()
	if !ok {
		return f.cfg.ReadAhead
	}
	return int(min(max(tail, next)-next+1, uint64(f.cfg.ReadAhead)))
}

// take applies the reading rule (docs/protocol.md "Reading" 1 and 2, the one
// TermFilter every reader uses) to the next slot and keeps what it
// delivers.
func (r *round) take(s *segmentlog.Slot) {
	before := r.filter.Max
	deliver := r.filter.Observe(&s.Batch)
	if r.filter.Max > before {
		// The first slot of a higher term (a fence, or a lower-term writer's
		// last valid batches met before the fence): GC keeps W slots from
		// here (docs/protocol.md "Flush, truncation, GC" rule 4).
		r.termChanges = append(r.termChanges, segmentlog.TermChange{Offset: s.Offset, Term: r.filter.Max})
	}
	r.next = s.Offset + 1
	r.slots++
	r.walBytes += int64(s.Size)
	if !deliver {
		return
	}
	b := &s.Batch
	for i := range b.Messages {
		m := &b.Messages[i]
		id := segmentlog.MessageID{Offset: b.Offset, Index: uint32(i)}
		// The idempotency window and the last timetick fold every delivered
		// message, exactly as Writer recovery does.
		if !m.Key.IsZero() {
			r.keyed = append(r.keyed, keyedAck{m.Key, id, m.TimeTick})
		}
		r.lastTick = max(r.lastTick, m.TimeTick)
		if r.firstTick == 0 {
			r.firstTick = m.TimeTick
		}
		// TRANSACTIONS (issue #6) go here: only committed transaction
		// messages may reach a segment (rollback drops them), and the
		// checkpoint must never pass the begin of an open transaction
		// (docs/protocol.md "Flush, truncation, GC" rule 5). With #6's design a
		// transaction lands as one batch object holding its begin, body and
		// commit, so a delivered batch never holds an open transaction and
		// nothing needs holding back; a design that spreads a transaction
		// over several slots must buffer its messages here until the commit
		// and end the round (r.next) at the oldest open begin.
		r.groups[m.VChannel] = append(r.groups[m.VChannel], segmentlog.Delivery{ID: id, Term: b.Term, Message: *m})
		r.messages++
	}
}

// keyedAck is one delivered keyed message.
type keyedAck struct {
	key  segmentlog.IdemKey
	id   segmentlog.MessageID
	tick uint64
}

// vchannels returns the round's groups in a fixed order.
func (r *round) vchannels() []string {
	vs := make([]string, 0, len(r.groups))
	for v := range r.groups {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

// checkpoint is the record the round commits, with refs appended to the
// manifest.
func (r *round) checkpoint(p, flushID string, refs []segmentlog.SegmentRef, now time.Time) segmentlog.Checkpoint {
	cp := segmentlog.Checkpoint{
		Format:       segmentlog.CheckpointFormat,
		PChannel:     p,
		C:            r.next,
		MaxTerm:      r.filter.Max,
		TermChanges:  append(slices.Clone(r.base.TermChanges), r.termChanges...),
		LastTimeTick: max(r.base.LastTimeTick, r.lastTick),
		DedupState:   r.dedupState,
		Segments:     append(slices.Clone(r.base.Segments), refs...),
		Retired:      slices.Clone(r.base.Retired), // an older compactor's inline list, kept for GC
		Trim:         r.base.Trim,                  // a trim's, kept for readers and GC
		FlushID:      flushID,
		Version:      r.base.Version + 1,
		UpdatedAt:    now.UTC(),
	}
	return cp
}

// readCheckpoint reads the checkpoint with per-attempt timeouts, retrying
// transient failures until ctx ends.
func (f *Flusher) readCheckpoint(ctx context.Context) (segmentlog.Checkpoint, string, error) {
	return readCheckpoint(ctx, f.checkpoints, f.cfg.PChannel, f.cfg.GetTimeout)
}

// readCheckpoint reads p's checkpoint through cache (a conditional GET:
// an unchanged record is not downloaded again) with per-attempt timeouts,
// retrying transient failures until ctx ends.
func readCheckpoint(ctx context.Context, cache *segmentlog.CheckpointCache, p string, timeout time.Duration) (segmentlog.Checkpoint, string, error) {
	var cp segmentlog.Checkpoint
	var etag string
	err := retry(ctx, func(actx context.Context) error {
		var err error
		cp, etag, err = cache.Read(actx, p)
		return err
	}, timeout)
	return cp, etag, err
}
