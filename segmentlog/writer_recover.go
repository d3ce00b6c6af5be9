package segmentlog

import (
	"bytes"

	"context"
	"errors"
	"fmt"
	"github.com/cairnlog/cairn/infra/objstore"
	"time"
)

// maxRecoverRounds bounds how often recovery restarts because the
// checkpoint moved past the fence it placed (docs/protocol.md "Fence" rule 4).
const maxRecoverRounds = 8

// recover replays the WAL from the checkpoint through the reading rule,
// rebuilding the recovered state (last timetick, idempotency window), then
// claims the fence window. It returns the first data slot, s+W, where s is
// the first slot of this term (docs/protocol.md, "Fence").
//
// first is a checkpoint read started before the lease was acquired (so the
// two overlap): it may be older than the lease, which only makes the replay
// start lower; rule 4's re-read below catches a checkpoint that moved past
// the fence meanwhile, as it does for one that moves during the replay.
func (w *Writer) recover(ctx context.Context, first *checkpointRead) (uint64, error) {
	gone := "" // a dedup state object found gone
	for round := 0; round < maxRecoverRounds; round++ {
		if round > 0 || first == nil {
			first = w.readCheckpointAsync(ctx)
		}
		cp, err := first.wait()
		if err != nil {
			return 0, err
		}
		// The window as of c (the dedup state object the checkpoint names)
		// is read while the replay folds what lies above c into a window
		// of its own; the two are joined in commit order after both.
		state := w.readDedupStateAsync(ctx, cp.DedupState)
		w.mu.Lock()
		w.dedup = newDedupWindow(w.cfg.DedupWindow, w.cfg.DedupMaxKeys)
		w.clock.last = max(w.clock.last, cp.LastTimeTick)
		w.mu.Unlock()

		filter := TermFilter{Max: cp.MaxTerm}
		// Rule 1: never probe below the checkpoint. The tail hint only
		// bounds where the first empty slot may be: we replay from c because
		// the idempotency window and the last timetick need every batch
		// above it.
		replayed := w.cfg.Now()
		f, err := w.replay(ctx, cp.C, &filter)
		w.recoverTimes.replay += w.cfg.Now().Sub(replayed)
		if err != nil {
			state.cancel()
			return 0, err
		}
		runs, err := state.wait()
		if errors.Is(err, ErrDedupStateGone) && cp.DedupState != gone {
			// A newer flush deleted it: the checkpoint moved on. (If the
			// checkpoint still names it next round, it is lost: an error.)
			w.log.Info("dedup state gone during recovery; recovering again from the new checkpoint", "checkpoint", cp.C)
			gone = cp.DedupState
			continue
		}
		if err != nil {
			return 0, err
		}
		now := w.cfg.Now()
		w.mu.Lock()
		joined := newDedupWindow(w.cfg.DedupWindow, w.cfg.DedupMaxKeys)
		joined.restore(cp.Dedup, now) // format 1: inline
		joined.restoreState(runs, now)
		w.dedup.eachRun(func(k producerEpoch, r dedupRun) { joined.restoreRun(k, r, now) })
		w.dedup = joined
		w.mu.Unlock()
		if f < w.grant.TailHint {
			// Reading rule 3: a missing slot may have been flushed and
			// collected while we replayed. Below the checkpoint: start
			// again from it. Otherwise it is a hole below a fence.
			cp2, err := w.readCheckpoint(ctx)
			if err != nil {
				return 0, err
			}
			if f < cp2.C {
				w.log.Info("slot collected during replay; recovering again from the new checkpoint", "slot", f, "checkpoint", cp2.C)
				continue
			}
			return 0, fmt.Errorf("%w: slot %d is empty below the released tail %d (a hole below a fence)", ErrInvariant, f, w.grant.TailHint)
		}
		// Rule 4: if the checkpoint passed our fence while we probed, GC may
		// have emptied the slots we take for the tail: start again. The
		// re-read goes out with the window's PUTs, after the replay found f
		// empty. That is as good as reading after the window lands: c passes
		// a slot only once the slot holds a batch, and a GC deletes only
		// below c; so if f was empty when probed and c ≤ f when re-read, no
		// flush can pass f before our fence lands there, and a batch that
		// beats our fence to f moves the window up, never down.
		recheck := w.readCheckpointAsync(ctx)
		claimed := w.cfg.Now()
		s, err := w.claimWindow(ctx, f, &filter)
		w.recoverTimes.window += w.cfg.Now().Sub(claimed)
		if err != nil {
			recheck.cancel()
			return 0, err
		}
		cp2, err := recheck.wait()
		if err != nil {
			return 0, err
		}
		if s < cp2.C {
			w.log.Warn("checkpoint passed the fence during recovery; recovering again", "fence", s, "checkpoint", cp2.C)
			continue
		}
		w.mu.Lock()
		w.stats.FenceOffset = s
		w.mu.Unlock()
		return s + FenceWindow, nil
	}
	return 0, fmt.Errorf("recover: the checkpoint kept passing the fence after %d rounds", maxRecoverRounds)
}

// checkpointRead is a checkpoint read running in its own goroutine.
type checkpointRead struct {
	done   chan struct{}
	cancel context.CancelFunc
	cp     Checkpoint
	err    error
}

// readCheckpointAsync starts reading the checkpoint, so that the read
// shares a round trip with other requests; wait returns its result, cancel
// abandons it.
func (w *Writer) readCheckpointAsync(ctx context.Context) *checkpointRead {
	ctx, cancel := context.WithCancel(ctx)
	r := &checkpointRead{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(r.done)
		r.cp, r.err = w.readCheckpoint(ctx)
	}()
	return r
}

// stateRead is a dedup state object read running in its own goroutine.
type stateRead struct {
	done   chan struct{}
	cancel context.CancelFunc
	runs   []stateRun
	err    error
}

// readDedupStateAsync starts reading the dedup state object key ("" for
// none), retrying transient failures.
func (w *Writer) readDedupStateAsync(ctx context.Context, key string) *stateRead {
	ctx, cancel := context.WithCancel(ctx)
	r := &stateRead{done: make(chan struct{}), cancel: cancel}
	if key == "" {
		close(r.done)
		return r
	}
	go func() {
		defer close(r.done)
		pauses := recoverBackoff.Start()
		for {
			actx, cancel := context.WithTimeout(ctx, w.cfg.GetTimeout)
			r.runs, r.err = readDedupState(actx, w.store, key)
			cancel()
			if r.err == nil || ctx.Err() != nil || !objstore.IsRetryable(r.err) {
				return
			}
			if pauses.Wait(ctx) != nil {
				r.err = ctx.Err()
				return
			}
		}
	}()
	return r
}

func (r *stateRead) wait() ([]stateRun, error) {
	<-r.done
	r.cancel()
	return r.runs, r.err
}

func (r *checkpointRead) wait() (Checkpoint, error) {
	<-r.done
	r.cancel()
	return r.cp, r.err
}

func (w *Writer) readCheckpoint(ctx context.Context) (Checkpoint, error) {
	pauses := recoverBackoff.Start()
	for {
		actx, cancel := context.WithTimeout(ctx, w.cfg.GetTimeout)
		cp, _, err := w.checkpoints.Read(actx, w.cfg.PChannel)
		cancel()
		if err == nil {
			return cp, nil
		}
		if ctx.Err() != nil || !objstore.IsRetryable(err) {
			return Checkpoint{}, err
		}
		if pauses.Wait(ctx) != nil {
			return Checkpoint{}, ctx.Err()
		}
	}
}

// replay reads slots from `from` up to the first empty one, which it
// returns, folding every delivered batch into the recovered state.
func (w *Writer) replay(ctx context.Context, from uint64, filter *TermFilter) (uint64, error) {
	return w.replayWith(ctx, from, filter, false)
}

// replayWith is replay; with head, slots whose objects carry a fold summary
// are read with a HEAD and folded from it (a shared writer's catch-up).
func (w *Writer) replayWith(ctx context.Context, from uint64, filter *TermFilter, head bool) (uint64, error) {
	pf := newPrefetcher(w.store, w.cfg.Layout, w.cfg.PChannel, from, w.cfg.ReadAhead, w.cfg.GetTimeout)
	pf.head = head
	defer pf.close()
	for {
		r := pf.nextSlot(ctx)
		if r.err != nil {
			return 0, r.err
		}
		if r.missing {
			return r.offset, nil
		}
		w.mu.Lock()
		w.stats.RecoveredSlots++
		w.mu.Unlock()
		if err := w.foldSlot(&r.batch, r.summary, filter); err != nil {
			return 0, err
		}
	}
}

// fold applies one slot met before this term's window (docs/protocol.md "Fence"
// rule 2): a delivered batch of a lower term is valid data; it feeds the
// last timetick and the idempotency window.
func (w *Writer) fold(b *Batch, filter *TermFilter) error { return w.foldSlot(b, nil, filter) }

// foldSlot is fold; with sum set, b carries no messages and sum stands for
// them (a slot read with a HEAD).
func (w *Writer) foldSlot(b *Batch, sum *foldSummary, filter *TermFilter) error {
	switch {
	case b.Term > w.grant.Term:
		return fmt.Errorf("%w: slot %d holds term %d, ours is %d", ErrFenced, b.Offset, b.Term, w.grant.Term)
	case b.Term == w.grant.Term && b.Nonce != w.nonceB:
		return fmt.Errorf("%w: slot %d holds term %d with another nonce", ErrInvariant, b.Offset, b.Term)
	}
	if !filter.Observe(b) {
		if b.Kind == KindData && b.Term < filter.Max {
			w.mu.Lock()
			w.stats.GarbageSlots++
			w.mu.Unlock()
		}
		return nil
	}
	now := w.cfg.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if sum != nil {
		w.clock.last = max(w.clock.last, sum.lastTick)
		for _, r := range sum.runs {
			for j := range r.count {
				k := r.key
				k.Seq += uint64(j)
				w.dedup.commit(k, MessageID{Offset: b.Offset, Index: r.index + j}, r.tick+uint64(j), now)
			}
		}
		return nil
	}
	for i, m := range b.Messages {
		w.clock.last = max(w.clock.last, m.TimeTick)
		if !m.Key.IsZero() {
			w.dedup.commit(m.Key, MessageID{Offset: b.Offset, Index: uint32(i)}, m.TimeTick, now)
		}
	}
	return nil
}

// claimWindow places this term's window of W slots at the first empty slot
// f: a fence at f and fillers after it, all with PutIfAbsent, in parallel.
// A lower-term batch that wins the first slot of the window landed before
// any batch of ours, so it is valid data: it is folded and the window moves
// one slot on (and grows by one slot at its end), so that it always spans W
// slots from our first one — the bound on a zombie's outstanding PUTs
// (docs/protocol.md "Fence" rule 3). A lower-term batch that wins a later slot of
// the window is garbage. It returns s, the first slot holding our term.
func (w *Writer) claimWindow(ctx context.Context, f uint64, filter *TermFilter) (uint64, error) {
	const W = FenceWindow
	type outcome struct {
		ours  bool
		other Batch // when !ours
		err   error
	}
	resolved := make(map[uint64]outcome)
	s := f
	for {
		// Claim every slot of [s, s+W) not claimed yet.
		var todo []uint64
		for off := s; off < s+W; off++ {
			if _, ok := resolved[off]; !ok {
				todo = append(todo, off)
			}
		}
		results := make([]outcome, len(todo))
		done := make(chan struct{}, len(todo))
		for i, off := range todo {
			go func() {
				kind := KindFiller
				if off == f {
					kind = KindFence
				}
				ours, other, err := w.claimSlot(ctx, off, kind)
				results[i] = outcome{ours, other, err}
				done <- struct{}{}
			}()
		}
		for range todo {
			<-done
		}
		for i, off := range todo {
			if results[i].err != nil {
				return 0, results[i].err
			}
			resolved[off] = results[i]
		}
		first := resolved[s]
		if !first.ours {
			// A batch that landed before any of ours: valid data (or
			// garbage of an older term, as the reading rule decides).
			if err := w.fold(&first.other, filter); err != nil {
				return 0, err
			}
			s++
			continue
		}
		filter.Max = w.grant.Term
		for off := s + 1; off < s+W; off++ {
			o := resolved[off]
			if o.ours {
				continue
			}
			if o.other.Term > w.grant.Term {
				return 0, fmt.Errorf("%w: window slot %d holds term %d", ErrFenced, off, o.other.Term)
			}
			// A zombie's PUT that landed inside our window: garbage, never
			// delivered (its term is below ours at s).
			w.mu.Lock()
			w.stats.GarbageSlots++
			w.mu.Unlock()
		}
		return s, nil
	}
}

// claimSlot writes a fence or filler batch of this term at off. It reports
// ours=true if the slot holds our batch (written now or by an earlier
// attempt whose reply was lost), else the batch that is there.
func (w *Writer) claimSlot(ctx context.Context, off uint64, kind BatchKind) (bool, Batch, error) {
	b := Batch{Kind: kind, Term: w.grant.Term, Offset: off, Nonce: w.nonceB}
	data, err := b.Encode()
	if err != nil {
		return false, Batch{}, err
	}
	landed, existing, err := w.putSlot(ctx, off, data, summarize(&b))
	if err != nil {
		return false, Batch{}, err
	}
	if landed {
		return true, Batch{}, nil
	}
	eb, derr := DecodeBatch(existing)
	if derr != nil {
		return false, Batch{}, fmt.Errorf("claim slot %d: %w", off, derr)
	}
	if eb.Term == w.grant.Term && eb.Nonce == w.nonceB {
		return true, Batch{}, nil // ours, e.g. a filler of an earlier recovery round
	}
	return false, eb, nil
}

// putSlot writes data at slot off with PutIfAbsent, resending identical
// bytes on transient failures until the lease deadline (docs/protocol.md "Append"
// rule 2). It returns landed=true if the slot now holds exactly data, or the
// bytes of the other object that holds the slot. An error means the outcome
// is unknown (ErrOutcomeUnknown) or the writer must stop.
func (w *Writer) putSlot(ctx context.Context, off uint64, data []byte, fold string) (landed bool, existing []byte, err error) {
	key := w.cfg.Layout.WAL(w.cfg.PChannel, off)
	meta := map[string]string{"term": fmt.Sprint(w.grant.Term)}
	if fold != "" {
		meta[foldMetaKey] = fold
	}
	ambiguous := false
	giveUp := w.cfg.Now().Add(w.cfg.PutRetryLimit)
	pauses := putBackoff.Start()
	for {
		w.mu.Lock()
		deadline := earliest(w.grant.Deadline, giveUp)
		w.stats.PutAttempts++
		w.mu.Unlock()
		now := w.cfg.Now()
		if !now.Before(deadline) || ctx.Err() != nil {
			cause := fmt.Errorf("%w: slot %d did not land before the lease deadline or the retry limit", ErrLeaseExpired, off)
			if ctx.Err() != nil {
				cause = ctx.Err()
			}
			if ambiguous {
				return false, nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, cause)
			}
			return false, nil, cause
		}
		actx, cancel := context.WithDeadline(ctx, earliest(now.Add(w.cfg.PutTimeout), deadline))
		_, err := w.store.PutIfAbsent(actx, key, data, meta)
		cancel()
		switch {
		case err == nil:
			return true, nil, nil
		case errors.Is(err, objstore.ErrExists) && w.takenUnread && !ambiguous:
			// Every attempt so far was refused or failed before it was
			// sent: the object is another writer's, and the caller reads
			// what it needs of it.
			return false, nil, nil
		case errors.Is(err, objstore.ErrExists):
			cur, gerr := w.readBack(ctx, key, deadline)
			if gerr != nil {
				return false, nil, fmt.Errorf("%w: slot %d exists but cannot be read back: %w", ErrOutcomeUnknown, off, gerr)
			}
			if cur == nil {
				continue // deleted meanwhile (GC of garbage): try again
			}
			if bytes.Equal(cur, data) {
				return true, nil, nil // our earlier attempt landed
			}
			return false, cur, nil
		case objstore.IsRetryable(err), errors.Is(err, context.Canceled) && ctx.Err() == nil:
			// Only this attempt's own deadline ended it (HTTP clients
			// report some of those as a cancellation): retried, and the
			// outcome is unknown until one lands or is read back.
			ambiguous = true
			pauses.Wait(ctx)
		default:
			if ambiguous {
				return false, nil, fmt.Errorf("%w: slot %d: %w", ErrOutcomeUnknown, off, err)
			}
			return false, nil, fmt.Errorf("put slot %d: %w", off, err)
		}
	}
}

// readBack reads an existing slot's bytes, retrying transient errors until
// deadline; nil bytes mean the slot is empty again.
func (w *Writer) readBack(ctx context.Context, key string, deadline time.Time) ([]byte, error) {
	pauses := putBackoff.Start()
	for {
		now := w.cfg.Now()
		actx, cancel := context.WithDeadline(ctx, earliest(now.Add(w.cfg.GetTimeout), deadline.Add(w.cfg.GetTimeout)))
		obj, err := w.store.Get(actx, key)
		cancel()
		switch {
		case err == nil:
			return obj.Body, nil
		case errors.Is(err, objstore.ErrNotFound):
			return nil, nil
		case objstore.IsRetryable(err) && now.Before(deadline):
			pauses.Wait(ctx)
		default:
			return nil, err
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
