package segmentlog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// ErrContended: a SharedWriter lost the race for every slot it tried for
// WriterConfig.PutRetryLimit (other writers kept filling the tail).
// Nothing was written; the append may be sent again.
var ErrContended = errors.New("segmentlog: tail contended; nothing was written")

// SharedWriter appends to a pchannel under its shared term (docs/protocol.md,
// "Shared terms"), so that any number of writers in any number of processes
// append to one pchannel at once, none of them holding a lease. Each keeps
// the pchannel's state (idempotency window, last timetick) folded up to the
// tail it last saw and writes every batch at the first empty slot with
// PutIfAbsent. A lost race means another writer's batch is there: it is
// folded — its keys make a retry of the same message a duplicate, its
// timetick is passed — and the batch is rebuilt for the next empty slot.
//
// Nothing runs between calls: no renewal, no timer. That is what a process
// frozen between requests (a Lambda environment) needs. A call after a pause
// first catches up with the slots others wrote (and re-reads the checkpoint,
// rule 3). Calls are serialized. Once the writer stops (ErrFenced: another
// term took the pchannel) every call fails with the cause; open a new one.
type SharedWriter struct {
	cfg    WriterConfig
	core   *Writer // recovery code and folded state: grant, nonce, idempotency window, tick clock
	leases SharedLeases

	mu     sync.Mutex
	filter TermFilter
	openAt uint64    // the term's first data slot
	tail   uint64    // every slot below is folded
	fresh  time.Time // PUTs at tail or above may start before it (rule 3)
	err    error
	stats  SharedStats

	// What Err and Stats report, published at the end of every call, so
	// that they never wait for a call blocked on the store.
	pubMu    sync.Mutex
	pubErr   error
	pubStats SharedStats
}

// SharedStats counts what a SharedWriter did.
type SharedStats struct {
	Term       uint64
	Opened     bool   // this writer opened the term (placed its window)
	OpenAt     uint64 // the term's first data slot
	Tail       uint64
	Batches    int64 // batches this writer landed
	Messages   int64
	LostRaces  int64 // PUTs that found another writer's batch
	Folded     int64 // slots of other writers folded (catch-up and lost races)
	Probes     int64 // catch-ups that re-read the checkpoint
	Rebuilds   int64 // catch-ups that fell below the checkpoint and started over from it
	DedupHits  int64
	PutRetries int64
}

// OpenSharedWriter joins the shared term of cfg.PChannel: it adopts the open
// shared term, or takes the pchannel over (from any holder, live or not)
// with a new shared term, places its fence window like OpenWriter and marks
// the term open. It fails with an error wrapping the lease service's "held"
// error while another writer is opening a term (for at most its lease TTL).
func OpenSharedWriter(ctx context.Context, cfg WriterConfig, store objstore.Store, leases SharedLeases) (*SharedWriter, error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.FreshFor <= 0 {
		return nil, errors.New("segmentlog: FreshFor must be > 0")
	}
	core := newWriter(cfg, store, nil)
	core.takenUnread = true
	cp := core.readCheckpointAsync(ctx)
	grant, err := leases.OpenShared(ctx, cfg.PChannel, cfg.Holder, core.nonce)
	if err != nil {
		cp.cancel()
		return nil, fmt.Errorf("open shared writer %s: %w", cfg.PChannel, err)
	}
	if !grant.Shared {
		cp.cancel()
		return nil, fmt.Errorf("open shared writer %s: %w: lease service granted an exclusive term", cfg.PChannel, ErrInvariant)
	}
	sw := &SharedWriter{cfg: cfg, core: core, leases: leases}
	core.grant = grant
	core.clock = tickClock{last: grant.TickFloor, max: grant.TickMax}
	core.stats.Term = grant.Term
	sw.stats.Term = grant.Term

	if grant.OpenAt == 0 {
		// We took the pchannel: fence it as any new term does, then let
		// the others in.
		if grant.Nonce != core.nonce {
			cp.cancel()
			return nil, fmt.Errorf("open shared writer %s: %w: lease service granted nonce %q, want %q", cfg.PChannel, ErrInvariant, grant.Nonce, core.nonce)
		}
		start, err := core.recover(ctx, cp)
		if err != nil {
			return nil, fmt.Errorf("open shared writer %s term %d: %w", cfg.PChannel, grant.Term, err)
		}
		if err := leases.MarkOpen(ctx, cfg.PChannel, grant.Term, grant.Nonce, start); err != nil {
			return nil, fmt.Errorf("open shared writer %s term %d: %w: %w", cfg.PChannel, grant.Term, ErrFenced, err)
		}
		sw.openAt, sw.tail = start, start
		sw.filter = TermFilter{Max: grant.Term}
		sw.stats.Opened = true
		core.log.Info("shared term opened", "term", grant.Term, "fence", core.stats.FenceOffset, "first_data_slot", start)
	} else {
		// Adopt: write with the term's nonce; fold from the checkpoint on
		// the first call.
		core.setNonce(grant.Nonce)
		c, err := cp.wait()
		if err != nil {
			return nil, fmt.Errorf("open shared writer %s: %w", cfg.PChannel, err)
		}
		sw.openAt = grant.OpenAt
		if err := sw.resetTo(ctx, c); err != nil {
			return nil, fmt.Errorf("open shared writer %s: %w", cfg.PChannel, err)
		}
	}
	// Shared writers bound no timetick by tt_max: every tick they hand out
	// is written in the log (Sync writes one), so the next term's recovery
	// folds it (rule 5).
	core.clock.max = math.MaxUint64
	sw.stats.OpenAt = sw.openAt
	sw.publish()
	return sw, nil
}

// Term is the shared term this writer appends with.
func (sw *SharedWriter) Term() uint64 { return sw.core.grant.Term }

// Err returns why the writer stopped, or nil while it runs (as of the
// last call that finished).
func (sw *SharedWriter) Err() error {
	sw.pubMu.Lock()
	defer sw.pubMu.Unlock()
	return sw.pubErr
}

// Stats returns a copy of the writer's counters as of the last call that
// finished.
func (sw *SharedWriter) Stats() SharedStats {
	sw.pubMu.Lock()
	defer sw.pubMu.Unlock()
	return sw.pubStats
}

// publish makes the state Err and Stats report current. sw.mu must be
// held.
func (sw *SharedWriter) publish() {
	s := sw.stats
	s.Tail = sw.tail
	sw.pubMu.Lock()
	sw.pubErr, sw.pubStats = sw.err, s
	sw.pubMu.Unlock()
}

// resetTo makes the folded state the checkpoint's — its idempotency
// window (inline in format 1, the dedup state object it names in format
// 2), last timetick and highest term: the next catch-up replays from cp.C.
// A state object a newer flush deleted meanwhile means the checkpoint
// moved on: it is read again.
func (sw *SharedWriter) resetTo(ctx context.Context, cp Checkpoint) error {
	core := sw.core
	for round := 0; ; round++ {
		var runs []stateRun
		if cp.DedupState != "" {
			var err error
			runs, err = readDedupState(ctx, core.store, cp.DedupState)
			if errors.Is(err, ErrDedupStateGone) && round < maxRecoverRounds {
				if cp, err = core.readCheckpoint(ctx); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
		}
		now := sw.cfg.Now()
		core.mu.Lock()
		core.dedup = newDedupWindow(sw.cfg.DedupWindow, sw.cfg.DedupMaxKeys)
		core.dedup.restore(cp.Dedup, now)
		core.dedup.restoreState(runs, now)
		core.clock.last = max(core.clock.last, cp.LastTimeTick)
		core.mu.Unlock()
		sw.filter = TermFilter{Max: cp.MaxTerm}
		sw.tail = cp.C
		sw.fresh = time.Time{}
		return nil
	}
}

// catchUp folds every slot from the tail to the first empty one, then
// re-reads the checkpoint: a missing slot is the tail only at or above c
// (Reading 3); below it, the slots were flushed and collected while this
// writer was away, and it starts over from the checkpoint. The read of the
// empty slot, confirmed by the checkpoint, is the proof that makes PUTs at
// the tail safe for FreshFor (rule 3).
func (sw *SharedWriter) catchUp(ctx context.Context) error {
	for round := 0; round < maxRecoverRounds; round++ {
		sent := sw.cfg.Now()
		f, err := sw.replay(ctx)
		if err != nil {
			return err
		}
		cp, err := sw.core.readCheckpoint(ctx)
		if err != nil {
			return err
		}
		sw.stats.Probes++
		if f < cp.C {
			sw.stats.Rebuilds++
			sw.core.log.Info("shared writer fell below the checkpoint; folding again from it", "slot", f, "checkpoint", cp.C)
			if err := sw.resetTo(ctx, cp); err != nil {
				return err
			}
			continue
		}
		if f < sw.openAt {
			return fmt.Errorf("%w: slot %d is empty below the shared term's first data slot %d", ErrInvariant, f, sw.openAt)
		}
		sw.fresh = sent.Add(sw.cfg.FreshFor)
		return nil
	}
	return fmt.Errorf("shared writer %s: the checkpoint kept passing the tail after %d rounds", sw.cfg.PChannel, maxRecoverRounds)
}

// replay folds the slots from the tail up to the first empty one (read
// ahead in parallel) and moves the tail there.
func (sw *SharedWriter) replay(ctx context.Context) (uint64, error) {
	before := sw.core.Stats().RecoveredSlots
	f, err := sw.core.replayWith(ctx, sw.tail, &sw.filter, true)
	sw.stats.Folded += sw.core.Stats().RecoveredSlots - before
	if err != nil {
		return 0, err
	}
	sw.tail = f
	return f, nil
}

// Append appends msgs as one batch at the first empty slot (see
// Writer.Append for keys and acks). A message whose idempotency key the
// folded log already holds is answered Duplicate with the first copy's ID.
func (sw *SharedWriter) Append(ctx context.Context, msgs ...Message) ([]Ack, error) {
	return sw.append(ctx, validateAppend, msgs, nil)
}

// Holds reports whether the folded log holds key (see Writer.Holds): its
// message landed at a slot below every slot this writer fills later. It
// does not fold first, so a key another writer landed since the last call
// may read false.
func (sw *SharedWriter) Holds(key IdemKey) bool {
	sw.core.mu.Lock()
	defer sw.core.mu.Unlock()
	e, ok := sw.core.dedup.lookup(key)
	return ok && e.done
}

// AppendAt is Append on a condition, as Writer.AppendAt: the batch lands at
// slot offset or nothing is written (ErrOffsetMismatch).
func (sw *SharedWriter) AppendAt(ctx context.Context, offset uint64, msgs ...Message) ([]Ack, error) {
	return sw.append(ctx, validateAppend, msgs, &offset)
}

// AppendControl appends control messages, as Writer.AppendControl.
func (sw *SharedWriter) AppendControl(ctx context.Context, msgs ...Message) ([]Ack, error) {
	return sw.append(ctx, validateControl, msgs, nil)
}

// Sync writes a timetick-only batch and returns its tick t: every message
// appended later, by any writer, gets a larger tick (it folds this batch
// first), and every batch below it has landed (slots fill in order).
func (sw *SharedWriter) Sync(ctx context.Context) (uint64, error) {
	acks, err := sw.AppendControl(ctx, Message{Type: TypeTimeTick})
	if err != nil {
		return 0, err
	}
	return acks[0].TimeTick, nil
}

// RaiseTickFloor makes every later timetick of the pchannel greater than t
// (docs/protocol.md "Snapshots" rule 3) by writing a timetick above it.
func (sw *SharedWriter) RaiseTickFloor(ctx context.Context, t uint64) error {
	sw.mu.Lock()
	sw.core.mu.Lock()
	sw.core.clock.last = max(sw.core.clock.last, t)
	sw.core.mu.Unlock()
	sw.mu.Unlock()
	_, err := sw.Sync(ctx)
	return err
}

func (sw *SharedWriter) append(ctx context.Context, validate func(*Message) error, msgs []Message, at *uint64) ([]Ack, error) {
	return sw.appendBy(ctx, validate, msgs, at, time.Time{})
}

// appendBy is append with a time by which every PUT attempt must have
// started (zero for none): past it the call fails with errPastWriteBy,
// nothing written. A shared transaction's commit writes only inside its
// seal window (shared_txn.go).
func (sw *SharedWriter) appendBy(ctx context.Context, validate func(*Message) error, msgs []Message, at *uint64, writeBy time.Time) ([]Ack, error) {
	pch := sw.cfg.PChannel
	msgs, _, err := checkMessages(pch, validate, msgs, sw.cfg.MaxBatchBytes)
	if err != nil {
		return nil, err
	}
	if len(msgs) > MaxMessages {
		return nil, fmt.Errorf("append %s: %w: %d messages, the batch limit is %d", pch, ErrTooLarge, len(msgs), MaxMessages)
	}

	sw.mu.Lock()
	defer sw.mu.Unlock()
	defer sw.publish()
	if sw.err != nil {
		return nil, fmt.Errorf("append %s: shared writer stopped, nothing was written: %w", pch, sw.err)
	}
	giveUp := sw.cfg.Now().Add(sw.cfg.PutRetryLimit)
	if !writeBy.IsZero() {
		if !sw.cfg.Now().Before(writeBy) {
			return nil, fmt.Errorf("append %s: %w", pch, errPastWriteBy)
		}
		giveUp = earliest(giveUp, writeBy)
	}
	// Every store request of the call ends by then: a call never holds
	// the writer longer than its retry limit (real time, not the clock's).
	ctx, cancel := context.WithTimeout(ctx, sw.cfg.PutRetryLimit+sw.cfg.GetTimeout)
	defer cancel()
	if sw.cfg.Now().Before(sw.fresh) {
		// Other writers may have appended since this writer's last call:
		// fold their slots first (HEADs, in parallel, where they carry a
		// fold summary) rather than upload a batch bound to lose its slot.
		if _, err := sw.replay(ctx); err != nil {
			return nil, sw.fail(err)
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("append %s: nothing was written: %w", pch, err)
		}
		if !sw.cfg.Now().Before(sw.fresh) {
			if err := sw.catchUp(ctx); err != nil {
				return nil, sw.fail(err)
			}
		}
		if at != nil && *at != sw.tail {
			return nil, fmt.Errorf("append %s: %w: expected offset %d, the next slot is %d; nothing was written", pch, ErrOffsetMismatch, *at, sw.tail)
		}
		b, acks, sent, err := sw.build(msgs)
		if err != nil {
			return nil, fmt.Errorf("append %s: %w", pch, err)
		}
		if len(b.Messages) == 0 {
			return acks, nil // every message is in the log already
		}
		data, err := b.Encode()
		if err != nil {
			return nil, fmt.Errorf("append %s: %w", pch, err)
		}
		sw.core.mu.Lock()
		sw.core.grant.Deadline = earliest(sw.fresh, giveUp) // putSlot sends no attempt past it
		sw.core.mu.Unlock()
		landed, existing, err := sw.core.putSlot(ctx, b.Offset, data, summarize(&b))
		switch {
		case err != nil && errors.Is(err, ErrOutcomeUnknown):
			// It may land later; the next call folds it from the log.
			sw.fresh = time.Time{}
			return nil, fmt.Errorf("append %s: %w", pch, err)
		case err != nil && errors.Is(err, ErrLeaseExpired) && sw.cfg.Now().Before(giveUp):
			continue // the proof of the tail ran out before a PUT went out: catch up
		case err != nil && errors.Is(err, ErrLeaseExpired) && !writeBy.IsZero() && !sw.cfg.Now().Before(writeBy):
			return nil, fmt.Errorf("append %s: %w: slot %d", pch, errPastWriteBy, b.Offset)
		case err != nil && errors.Is(err, ErrLeaseExpired):
			return nil, fmt.Errorf("append %s: %w: slot %d: nothing was written", pch, ErrContended, b.Offset)
		case err != nil:
			return nil, fmt.Errorf("append %s: %w", pch, err)
		case landed:
			sw.landed(&b, len(data), sent)
			return acks, nil
		}
		if err := sw.lost(ctx, b.Offset, existing); err != nil {
			return nil, sw.fail(err)
		}
		if at != nil {
			return nil, fmt.Errorf("append %s: %w: expected offset %d was taken by another writer; nothing was written", pch, ErrOffsetMismatch, *at)
		}
		if !sw.cfg.Now().Before(giveUp) {
			if !writeBy.IsZero() && !sw.cfg.Now().Before(writeBy) {
				return nil, fmt.Errorf("append %s: %w: slot %d", pch, errPastWriteBy, b.Offset)
			}
			return nil, fmt.Errorf("append %s: %w: slot %d", pch, ErrContended, b.Offset)
		}
		// Others are ahead: fold their slots (in parallel) before the
		// next try. The proof of rule 3 still covers the slots above.
		if _, err := sw.replay(ctx); err != nil {
			return nil, sw.fail(err)
		}
	}
}

// build makes the batch for the tail slot out of the messages whose keys the
// folded log does not hold, and the acks it will earn; acks of messages
// already in the log are filled in (Duplicate). A transaction (msgs ending
// with its commit) whose commit key the log holds is left out whole, with
// the commit's ack alone. sent is the time taken before the PUT.
func (sw *SharedWriter) build(msgs []Message) (Batch, []Ack, time.Time, error) {
	core := sw.core
	core.mu.Lock()
	defer core.mu.Unlock()
	now := sw.cfg.Now()
	b := Batch{Kind: KindData, Term: core.grant.Term, Offset: sw.tail, Nonce: core.nonceB}
	if n := len(msgs); msgs[n-1].Type == TypeTxnCommit {
		// A transaction is one unit: once its commit's key is in the log,
		// none of its messages is written again (shared_txn.go).
		if e, ok := core.dedup.lookup(msgs[n-1].Key); ok && e.done {
			sw.stats.DedupHits++
			return b, []Ack{{ID: e.id, TimeTick: e.tick, Duplicate: true}}, now, nil
		}
	}
	acks := make([]Ack, len(msgs))
	inCall := map[IdemKey]int{} // a key twice in one call: the second copy is a duplicate of the first
	var repeats [][2]int
	for i := range msgs {
		m := msgs[i]
		if !m.Key.IsZero() {
			if e, ok := core.dedup.lookup(m.Key); ok && e.done {
				acks[i] = Ack{ID: e.id, TimeTick: e.tick, Duplicate: true}
				sw.stats.DedupHits++
				continue
			}
			if j, ok := inCall[m.Key]; ok {
				repeats = append(repeats, [2]int{i, j})
				continue
			}
			inCall[m.Key] = i
			if m.Type == TypeBroadcast {
				if dl, _ := broadcastDeadline(&m); now.After(dl) {
					return Batch{}, nil, now, fmt.Errorf("message %d: %w (broadcast %s, deadline %s)",
						i, ErrDeadlinePassed, m.BroadcastID, dl.UTC().Format(time.RFC3339Nano))
				}
			}
		}
		t, err := core.clock.next(now)
		if err != nil {
			return Batch{}, nil, now, err
		}
		m.TimeTick = t
		acks[i] = Ack{ID: MessageID{Offset: b.Offset, Index: uint32(len(b.Messages))}, TimeTick: t}
		b.Messages = append(b.Messages, m)
	}
	for _, r := range repeats {
		a := acks[r[1]]
		a.Duplicate = true
		acks[r[0]] = a
	}
	// The ticks were only proposed: the clock moves when a batch is folded.
	if len(b.Messages) > 0 {
		core.clock.last = b.Messages[0].TimeTick - 1
	}
	return b, acks, now, nil
}

// landed folds our own batch and moves the tail past it. Its landing proves
// the next slot may be written for FreshFor from sent (rule 3).
func (sw *SharedWriter) landed(b *Batch, size int, sent time.Time) {
	// Our own batch is delivered (its term is the highest so far), so fold
	// cannot fail on it.
	_ = sw.core.fold(b, &sw.filter)
	sw.tail = b.Offset + 1
	sw.fresh = sent.Add(sw.cfg.FreshFor)
	sw.stats.Batches++
	sw.stats.Messages += int64(len(b.Messages))
	if sw.cfg.Cache != nil {
		sw.cfg.Cache.Put(sw.cfg.PChannel, b.Offset, b.Term, b, int64(size))
	}
	if sw.cfg.Tail != nil {
		sw.cfg.Tail.Publish(sw.cfg.PChannel, sw.tail)
	}
}

// lost folds the batch another writer landed at off, where ours was to go:
// from existing, its bytes when the PUT read them back, else from a HEAD
// (its fold summary; the whole batch when it has none), as a catch-up does.
// A slot found empty again was deleted meanwhile: the tail stays and the
// slot is tried again.
func (sw *SharedWriter) lost(ctx context.Context, off uint64, existing []byte) error {
	sw.stats.LostRaces++
	r := slotResult{offset: off}
	if existing != nil {
		b, err := DecodeBatch(existing)
		r.batch, r.err = b, err
	} else {
		r = headSlot(ctx, sw.core.store, sw.cfg.Layout, sw.cfg.PChannel, off, sw.cfg.GetTimeout)
	}
	switch {
	case r.err != nil && (existing != nil || errors.Is(r.err, ErrCorrupt)):
		return fmt.Errorf("%w: slot %d: %w", ErrInvariant, off, r.err)
	case r.err != nil:
		return r.err // store trouble: the writer stays usable
	case r.missing:
		return nil
	case r.batch.Term > sw.core.grant.Term:
		return fmt.Errorf("%w: slot %d holds term %d", ErrFenced, off, r.batch.Term)
	case r.batch.Term < sw.core.grant.Term:
		return fmt.Errorf("%w: slot %d, past the shared term's window, holds older term %d", ErrInvariant, off, r.batch.Term)
	}
	if err := sw.core.foldSlot(&r.batch, r.summary, &sw.filter); err != nil {
		return err
	}
	sw.stats.Folded++
	sw.tail = off + 1
	return nil
}

// fail stops the writer on a fatal error (fenced, invariant) and returns
// err; other errors (store trouble) leave it usable.
func (sw *SharedWriter) fail(err error) error {
	if errors.Is(err, ErrFenced) || errors.Is(err, ErrInvariant) {
		sw.err = err
		if sw.cfg.Cache != nil {
			sw.cfg.Cache.DropTerm(sw.cfg.PChannel, sw.core.grant.Term)
		}
	}
	return fmt.Errorf("shared writer %s: %w", sw.cfg.PChannel, err)
}

// Close stops the writer. It holds no lease, so there is nothing to give
// back; later calls fail with ErrClosed.
func (sw *SharedWriter) Close(context.Context) error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.err == nil {
		sw.err = ErrClosed
	}
	sw.publish()
	return nil
}
