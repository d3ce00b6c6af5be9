package segmentlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Ack is the outcome of one appended message.
type Ack struct {
	ID       MessageID
	TimeTick uint64
	// Duplicate: the message carried an idempotency key already acked
	// within the window; ID and TimeTick are those of the first copy.
	Duplicate bool
}

// appendReq is one append call's fresh messages on their way to batches.
// An Append's messages go into one batch; an AppendBatch's (split) may be
// spread over consecutive batches, each message acked where it landed.
type appendReq struct {
	msgs  []Message
	bytes int // what msgs[sent:] count against MaxBatchBytes
	enq   time.Time
	at    *uint64 // AppendAt: the only slot this append may land in
	split bool    // AppendBatch: may be cut between any two messages

	// Guarded by Writer.mu until done is closed, then read-only.
	acks  []Ack // acks[i] is set once msgs[i] is placed in a batch
	sent  int   // msgs[:sent] are placed in batches (or failed unplaced)
	acked int   // msgs[:acked] are acknowledged
	parts int   // batches holding some of msgs that are not resolved yet
	err   error // the first failure; msgs[acked:] did not get an ack
	done  chan struct{}
}

// reqPart is the messages msgs[from:to] of one append in one batch.
type reqPart struct {
	req      *appendReq
	from, to int
	bytes    int // what they count against MaxBatchBytes
}

// putJob is one batch object from assignment of its slot to its ack.
type putJob struct {
	batch    Batch
	parts    []reqPart
	size     int
	resolved bool
	landed   bool
	err      error // why it did not land (when resolved && !landed)
}

// messageBytes is what a message counts against MaxBatchBytes.
func messageBytes(m *Message) int {
	n := len(m.Payload) + len(m.VChannel) + len(m.Key.Producer) + len(m.BroadcastID) + 32
	for k, v := range m.Properties {
		n += len(k) + len(v) + 2
	}
	return n
}

// Append appends msgs as one unit: they land in one batch object, in order,
// each with its own timetick. It returns when they are acknowledged (the
// batch and every earlier one landed) or have failed. Messages carrying an
// idempotency key already acked within the window are not appended again:
// their Ack names the first copy. On ErrOutcomeUnknown (including a
// cancelled ctx) the messages may still be delivered; retry with the same
// keys to learn their IDs. Safe for concurrent use.
//
// The Writer keeps the payloads of msgs, not copies, in its Cache (if
// any) once acked: the caller must not change their bytes after the call.
func (w *Writer) Append(ctx context.Context, msgs ...Message) ([]Ack, error) {
	return w.appendChecked(ctx, validateAppend, msgs, nil, false)
}

// AppendBatch appends msgs as if each were appended by its own Append call,
// one after another in this order, but in one call with one wake-up: group
// commit packs them into as few batch objects as the batch limits allow,
// cutting between any two messages (with other callers' appends before and
// after them), so msgs may be any number of messages, each within
// MaxBatchBytes. Each Ack says where its message landed; acks are in
// offset order within the call. It returns when every message is
// acknowledged or a failure decided the rest.
//
// On an error, the returned acks are those of msgs[:len(acks)], which were
// acknowledged; the other messages were not, and err says why: an error
// wrapping ErrOutcomeUnknown (including a cancelled ctx, which returns no
// acks) means they may still be delivered, so retry them with the same
// idempotency keys to learn their IDs; ErrFenced and the writer's other
// terminal errors mean they never will be. A message whose idempotency key
// was already acked within the window is not appended again: its Ack names
// the first copy. Safe for concurrent use. The payloads are kept as
// Append keeps them.
func (w *Writer) AppendBatch(ctx context.Context, msgs []Message) ([]Ack, error) {
	return w.appendChecked(ctx, validateAppend, msgs, nil, true)
}

// AppendAt is Append on a condition: the messages land as one batch at slot
// offset, or not at all — if the next slot is another when their turn
// comes (earlier appends, timetick batches, another holder), it fails with
// an error wrapping ErrOffsetMismatch and writes nothing. The check and the
// slot assignment happen together, so no other batch can slip between them.
func (w *Writer) AppendAt(ctx context.Context, offset uint64, msgs ...Message) ([]Ack, error) {
	return w.appendChecked(ctx, validateAppend, msgs, &offset, false)
}

// AppendControl appends control messages (create or drop vchannel, flush,
// broadcast, timetick) exactly like Append. It is for Cairn's own
// components (the coordinator, the flusher); transactions have their own
// calls.
func (w *Writer) AppendControl(ctx context.Context, msgs ...Message) ([]Ack, error) {
	return w.appendChecked(ctx, validateControl, msgs, nil, false)
}

// appendChecked validates msgs, answers the keys already in the idempotency
// window, queues the rest as one appendReq (split: AppendBatch's) and waits
// for them. Without split, an error returns no acks.
func (w *Writer) appendChecked(ctx context.Context, validate func(*Message) error, msgs []Message, at *uint64, split bool) ([]Ack, error) {
	msgs, size, err := checkAppend(w.cfg.PChannel, validate, msgs, w.cfg.MaxBatchBytes, split)
	if err != nil {
		return nil, err
	}

	acks := make([]Ack, len(msgs))
	type dup struct {
		i    int
		e    *dedupEntry
		wait <-chan struct{}
	}
	var dups []dup
	var fresh []Message // in msgs' own array: a fresh message is never behind its index
	var freshIdx []int

	w.mu.Lock()
	if err := w.acceptingLocked(); err != nil {
		w.mu.Unlock()
		return nil, err
	}
	for i, m := range msgs {
		if !m.Key.IsZero() {
			if e, ok := w.dedup.lookup(m.Key); ok {
				if e.done {
					acks[i] = Ack{ID: e.id, TimeTick: e.tick, Duplicate: true}
					w.stats.DedupHits++
				} else {
					dups = append(dups, dup{i, e, w.dedup.waitFor(e)})
				}
				size -= messageBytes(&m)
				continue
			}
			if m.Type == TypeBroadcast {
				if dl, _ := broadcastDeadline(&m); w.cfg.Now().After(dl) {
					// Nothing of this call is written: free the keys the
					// earlier messages took (under the lock that guards
					// the window).
					for _, f := range fresh {
						if k := f.Key; !k.IsZero() {
							w.dedup.fail(k, ErrDeadlinePassed)
						}
					}
					w.mu.Unlock()
					return nil, fmt.Errorf("append %s: message %d: %w (broadcast %s, deadline %s)",
						w.cfg.PChannel, i, ErrDeadlinePassed, m.BroadcastID, dl.UTC().Format(time.RFC3339Nano))
				}
			}
			w.dedup.begin(m.Key)
		}
		if fresh == nil {
			fresh, freshIdx = msgs[:0], make([]int, 0, len(msgs)-i)
		}
		m.TimeTick = 0
		fresh = append(fresh, m)
		freshIdx = append(freshIdx, i)
	}
	var req *appendReq
	if len(fresh) > 0 {
		req = &appendReq{msgs: fresh, bytes: size, enq: w.cfg.Now(), at: at, split: split,
			acks: make([]Ack, len(fresh)), done: make(chan struct{})}
		w.queue = append(w.queue, req)
		w.queued += size
		w.signalLocked()
	}
	w.mu.Unlock()

	if req != nil {
		select {
		case <-req.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("append %s: %w: %w", w.cfg.PChannel, ErrOutcomeUnknown, ctx.Err())
		}
		for k, i := range freshIdx[:req.acked] {
			acks[i] = req.acks[k]
		}
		if req.err != nil {
			err := fmt.Errorf("append %s: %w", w.cfg.PChannel, req.err)
			if !split {
				return nil, err
			}
			return ackedPrefix(acks), err
		}
	}
	for _, d := range dups {
		select {
		case <-d.wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("append %s: %w: %w", w.cfg.PChannel, ErrOutcomeUnknown, ctx.Err())
		}
		if d.e.err != nil {
			err := fmt.Errorf("append %s: first copy of idempotency key: %w", w.cfg.PChannel, d.e.err)
			if !split {
				return nil, err
			}
			return ackedPrefix(acks), err
		}
		acks[d.i] = Ack{ID: d.e.id, TimeTick: d.e.tick, Duplicate: true}
	}
	return acks, nil
}

// ackedPrefix is the leading acks that are set (a set Ack has a timetick).
func ackedPrefix(acks []Ack) []Ack {
	for i := range acks {
		if acks[i].TimeTick == 0 {
			return acks[:i]
		}
	}
	return acks
}

// checkMessages validates a copy of msgs (validate may fill in fields; the
// caller's slice stays as it was) and returns it with its size, refusing
// what does not fit in one batch of maxBytes.
func checkMessages(pchannel string, validate func(*Message) error, msgs []Message, maxBytes int) ([]Message, int, error) {
	return checkAppend(pchannel, validate, msgs, maxBytes, false)
}

// checkAppend is checkMessages for all of msgs in one batch, or, if split,
// for each message alone.
func checkAppend(pchannel string, validate func(*Message) error, msgs []Message, maxBytes int, split bool) ([]Message, int, error) {
	if len(msgs) == 0 {
		return nil, 0, errors.New("segmentlog: append of no messages")
	}
	msgs = slices.Clone(msgs)
	size := 0
	for i := range msgs {
		if err := validate(&msgs[i]); err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrInvalidName) {
				err = fmt.Errorf("%w: %w", ErrInvalidMessage, err)
			}
			return nil, 0, fmt.Errorf("append %s: message %d: %w", pchannel, i, err)
		}
		n := messageBytes(&msgs[i])
		if split && n > maxBytes {
			return nil, 0, fmt.Errorf("append %s: message %d: %w: %d bytes, the batch limit is %d", pchannel, i, ErrTooLarge, n, maxBytes)
		}
		size += n
	}
	if !split && size > maxBytes {
		return nil, 0, fmt.Errorf("append %s: %w: %d bytes, the batch limit is %d", pchannel, ErrTooLarge, size, maxBytes)
	}
	return msgs, size, nil
}

// validateAppend checks a message a user may append.
func validateAppend(m *Message) error {
	if !m.Type.IsData() {
		return fmt.Errorf("message type %v cannot be appended directly", m.Type)
	}
	if m.BroadcastID != "" {
		return errors.New("broadcast messages go through the broadcast call")
	}
	return validateCommon(m)
}

// validateControl checks a control message of Cairn's own components.
func validateControl(m *Message) error {
	switch m.Type {
	case TypeCreateVChannel, TypeDropVChannel, TypeFlush:
		return validateCommon(m)
	case TypeBroadcast:
		if err := validateCommon(m); err != nil {
			return err
		}
		return prepareBroadcast(m)
	case TypeTimeTick:
		if m.TxnID != 0 || m.VChannel != "" {
			return errors.New("a timetick message carries no vchannel and no transaction")
		}
		return nil
	default:
		return fmt.Errorf("message type %v is not a control message for AppendControl", m.Type)
	}
}

func validateCommon(m *Message) error {
	if err := ValidateName("vchannel", m.VChannel); err != nil {
		return err
	}
	if m.TxnID != 0 {
		return errors.New("transaction messages go through the transaction calls")
	}
	if m.Key.IsZero() && (m.Key.Epoch != 0 || m.Key.Seq != 0) {
		return errors.New("idempotency key has an epoch or seq but no producer")
	}
	if len(m.Key.Producer) > MaxStringLen {
		return fmt.Errorf("%w: producer name", ErrTooLarge)
	}
	if strings.HasPrefix(m.Key.Producer, "@") {
		return errors.New("idempotency key producers starting with '@' are reserved for Cairn")
	}
	for k, v := range m.Properties {
		if k == "" || len(k) > MaxStringLen || len(v) > MaxStringLen {
			return fmt.Errorf("property %q: keys must be 1..%d bytes, values at most %d", k, MaxStringLen, MaxStringLen)
		}
	}
	return nil
}

// acceptingLocked reports why new appends are refused, if they are.
func (w *Writer) acceptingLocked() error {
	if w.err != nil {
		return fmt.Errorf("writer stopped, nothing was written: %w", w.err)
	}
	if w.closing {
		return fmt.Errorf("writer closing, nothing was written: %w", ErrClosed)
	}
	return nil
}

// Sync returns a timetick t such that every message appended later gets a
// larger timetick, and every batch with a smaller one is acknowledged
// (docs/protocol.md "Append" rule 4). Empty timeticks are not persisted: t is
// reserved in memory and bounded by the lease's tt_max, which the next
// holder starts above.
func (w *Writer) Sync(ctx context.Context) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.acceptingLocked(); err != nil {
		return 0, err
	}
	t, err := w.clock.next(w.cfg.Now())
	if err != nil {
		w.stopLocked(err)
		return 0, err
	}
	target := w.next
	for w.frontier < target {
		if w.blocked != nil {
			return 0, fmt.Errorf("sync %s: %w", w.cfg.PChannel, w.blocked)
		}
		ch := w.progress
		w.mu.Unlock()
		select {
		case <-ch:
			w.mu.Lock()
		case <-ctx.Done():
			w.mu.Lock()
			return 0, ctx.Err()
		}
	}
	return t, nil
}

// RaiseTickFloor makes every later timetick of the pchannel greater than t
// (docs/protocol.md "Snapshots" rule 3: a restored vchannel's own messages come
// after its snapshot's). The floor outlives this writer: a release records
// the last tick, an expiry hands over tt_max, and both are at least t. It
// fails if t is at or above the lease's tt_max (renew first).
func (w *Writer) RaiseTickFloor(t uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.acceptingLocked(); err != nil {
		return err
	}
	if t >= w.clock.max {
		return fmt.Errorf("raise timetick floor of %s to %d: at or above the lease's tt_max %d", w.cfg.PChannel, t, w.clock.max)
	}
	w.clock.last = max(w.clock.last, t)
	return nil
}

// batcher is group commit: it turns queued appends into batch objects, at
// most Window beyond the ack frontier, and starts a PUT for each.
func (w *Writer) batcher() {
	defer close(w.done)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		w.mu.Lock()
		if w.err != nil {
			w.failQueueLocked(w.err)
			w.mu.Unlock()
			return
		}
		if len(w.queue) == 0 && w.closing {
			w.mu.Unlock()
			return
		}
		if len(w.queue) == 0 || len(w.inflight) >= FenceWindow {
			w.mu.Unlock()
			<-w.wake
			continue
		}
		if w.cfg.Linger > 0 && w.queued < w.cfg.MaxBatchBytes && !w.closing {
			if wait := w.queue[0].enq.Add(w.cfg.Linger).Sub(w.cfg.Now()); wait > 0 {
				w.mu.Unlock()
				linger.Reset(wait)
				select {
				case <-w.wake:
					linger.Stop()
				case <-linger.C:
				}
				continue
			}
		}
		w.failMisplacedLocked()
		if len(w.queue) == 0 {
			w.mu.Unlock()
			continue
		}
		job, err := w.buildLocked()
		if err != nil {
			w.stopLocked(err)
			w.mu.Unlock()
			continue
		}
		w.inflight = append(w.inflight, job)
		w.mu.Unlock()
		go w.put(job)
	}
}

// buildLocked takes queued appends up to MaxBatchBytes and MaxMessages into
// one batch at the next slot and stamps their timeticks. An append is taken
// whole, except a split one, which is cut where the batch is full (its
// first message always fits); a conditional append is alone in its batch.
// On an error nothing is taken.
func (w *Writer) buildLocked() (*putJob, error) {
	now := w.cfg.Now()
	job := &putJob{batch: Batch{Kind: KindData, Term: w.grant.Term, Offset: w.next, Nonce: w.nonceB}}
	total, whole, count := 0, 0, 0
	for whole < len(w.queue) {
		req := w.queue[whole]
		if count > 0 && req.at != nil {
			break
		}
		from, to, bytes := req.sent, len(req.msgs), req.bytes
		if req.split {
			bytes = 0
			for to = from; to < len(req.msgs) && count+to-from < MaxMessages; to++ {
				n := messageBytes(&req.msgs[to])
				if count+to-from > 0 && total+bytes+n > w.cfg.MaxBatchBytes {
					break
				}
				bytes += n
			}
			if to == from {
				break
			}
		} else if count > 0 && (total+bytes > w.cfg.MaxBatchBytes || count+to-from > MaxMessages) {
			break
		}
		for i := from; i < to; i++ {
			t, err := w.clock.next(now)
			if err != nil {
				return nil, err
			}
			req.msgs[i].TimeTick = t
			req.acks[i] = Ack{ID: MessageID{Offset: w.next, Index: uint32(count + i - from)}, TimeTick: t}
		}
		job.batch.Messages = append(job.batch.Messages, req.msgs[from:to]...)
		job.parts = append(job.parts, reqPart{req: req, from: from, to: to, bytes: bytes})
		total += bytes
		count += to - from
		if to < len(req.msgs) {
			break // the batch is full
		}
		whole++
		if req.at != nil {
			break
		}
	}
	// Nothing failed: take the parts.
	for _, p := range job.parts {
		p.req.sent = p.to
		p.req.parts++
		p.req.bytes -= p.bytes
	}
	clear(w.queue[:whole])
	w.queue = w.queue[whole:]
	w.queued -= total
	w.next++
	w.lastActivity = now
	return job, nil
}

// failMisplacedLocked fails conditional appends at the head of the queue
// whose slot is not the next one.
func (w *Writer) failMisplacedLocked() {
	for len(w.queue) > 0 && w.queue[0].at != nil && *w.queue[0].at != w.next {
		req := w.queue[0]
		w.queue = w.queue[1:]
		w.queued -= req.bytes
		w.failUnsentLocked(req, fmt.Errorf("%w: expected offset %d, the next slot is %d; nothing was written", ErrOffsetMismatch, *req.at, w.next))
	}
}

// failQueueLocked fails every queued message that was never sent.
func (w *Writer) failQueueLocked(cause error) {
	for _, req := range w.queue {
		w.failUnsentLocked(req, fmt.Errorf("writer stopped, nothing was written: %w", cause))
	}
	w.queue, w.queued = nil, 0
}

// put sends one batch and resolves it. The encoding buffer goes back to
// the writer's pool only after a PUT that landed: an attempt that timed out
// may still be sending it (an HTTP client can read a request body after it
// returned), and a late send of changed bytes to a slot that holds ours is
// refused by the store, while one to a slot we did not fill would not be.
func (w *Writer) put(job *putJob) {
	buf, _ := w.encodeBufs.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	data, err := job.batch.AppendEncode((*buf)[:0])
	if err == nil {
		job.size = len(data)
		var landed bool
		var existing []byte
		landed, existing, err = w.putSlot(context.Background(), job.batch.Offset, data, summarize(&job.batch))
		if err == nil && !landed {
			err = w.classifyTaken(job.batch.Offset, existing)
		}
		if landed {
			*buf = data[:0]
			w.encodeBufs.Put(buf)
		}
	}
	w.resolve(job, err)
}

// classifyTaken explains why our data slot holds another batch (docs/protocol.md
// "Append" rule 2 and "Fence" rule 5).
func (w *Writer) classifyTaken(off uint64, existing []byte) error {
	b, err := DecodeBatch(existing)
	switch {
	case err != nil:
		return fmt.Errorf("%w: slot %d: %w", ErrInvariant, off, err)
	case b.Term > w.grant.Term:
		return fmt.Errorf("%w: slot %d holds term %d", ErrFenced, off, b.Term)
	case b.Term < w.grant.Term:
		return fmt.Errorf("%w: slot %d, past our fence window, holds older term %d", ErrInvariant, off, b.Term)
	default:
		return fmt.Errorf("%w: slot %d holds other bytes of our own term %d", ErrInvariant, off, b.Term)
	}
}

// resolve records a job's outcome and acks, in offset order, every job at
// the frontier whose outcome is known. The first job that did not land
// blocks every later one: those fail with ErrFenced when a newer term holds
// the blocking slot (they can never pass the reading rule), and with
// ErrOutcomeUnknown otherwise (the blocking slot may still fill).
func (w *Writer) resolve(job *putJob, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	job.resolved, job.landed, job.err = true, err == nil, err
	acked := false
	for len(w.inflight) > 0 && w.inflight[0].resolved {
		j := w.inflight[0]
		w.inflight[0] = nil
		w.inflight = w.inflight[1:]
		switch {
		case j.landed && w.blocked == nil:
			w.ackLocked(j)
			acked = true
		case w.blocked == nil:
			w.blocked = j.err
			w.log.Error("append failed; writer stops", "offset", j.batch.Offset, "err", j.err)
			w.stopLocked(j.err)
			w.failJobLocked(j, j.err)
		case j.landed && errors.Is(w.blocked, ErrFenced):
			w.failJobLocked(j, fmt.Errorf("%w: landed behind a newer term's slot, never delivered", ErrFenced))
		case j.landed || !errors.Is(j.err, ErrFenced):
			w.failJobLocked(j, fmt.Errorf("%w: an earlier slot failed: %w", ErrOutcomeUnknown, w.blocked))
		default:
			w.failJobLocked(j, j.err)
		}
	}
	if acked && w.cfg.Tail != nil && w.err == nil {
		w.cfg.Tail.Publish(w.cfg.PChannel, w.frontier)
	}
	w.signalLocked()
}

func (w *Writer) ackLocked(j *putJob) {
	now := w.cfg.Now()
	w.frontier = j.batch.Offset + 1
	if isTimeTickOnly(&j.batch) {
		w.dataSinceTick = false
		w.stats.TimeTickBatches++
	} else {
		w.dataSinceTick = true
	}
	w.stats.BatchesAcked++
	w.stats.MessagesAcked += int64(len(j.batch.Messages))
	w.stats.BytesAcked += int64(j.size)
	if w.cfg.Cache != nil && w.err == nil {
		b := j.batch
		w.cfg.Cache.Put(w.cfg.PChannel, b.Offset, b.Term, &b, int64(j.size))
	}
	for _, p := range j.parts {
		req := p.req
		for i := p.from; i < p.to; i++ {
			if k := req.msgs[i].Key; !k.IsZero() {
				w.dedup.commit(k, req.acks[i].ID, req.acks[i].TimeTick, now)
			}
		}
		req.acked = p.to // parts are acked in offset order
		req.parts--
		w.settleLocked(req)
	}
}

func (w *Writer) failJobLocked(j *putJob, err error) {
	for _, p := range j.parts {
		w.failMsgsLocked(p.req, p.from, p.to, err)
		p.req.parts--
		w.settleLocked(p.req)
	}
}

// failUnsentLocked fails the messages of req not placed in a batch.
func (w *Writer) failUnsentLocked(req *appendReq, err error) {
	w.failMsgsLocked(req, req.sent, len(req.msgs), err)
	req.sent = len(req.msgs)
	w.settleLocked(req)
}

// failMsgsLocked records that req's msgs[from:to] failed with err and
// frees their idempotency keys.
func (w *Writer) failMsgsLocked(req *appendReq, from, to int, err error) {
	for i := from; i < to; i++ {
		if k := req.msgs[i].Key; !k.IsZero() {
			w.dedup.fail(k, err)
		}
	}
	if req.err == nil {
		req.err = err
	}
}

// settleLocked ends req's call once each of its messages is in a batch
// that resolved, or failed unplaced.
func (w *Writer) settleLocked(req *appendReq) {
	if req.parts == 0 && req.sent == len(req.msgs) {
		close(req.done)
	}
}

// Close stops taking appends, waits for those already taken to resolve, and
// releases the lease with the ack frontier as the tail. It returns the
// writer's terminal error if it had stopped for another reason.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	w.closing = true
	w.signalLocked()
	w.mu.Unlock()
	select {
	case <-w.done:
	case <-ctx.Done():
		w.stop(fmt.Errorf("%w: close: %w", ErrClosed, ctx.Err()))
		<-w.done
	}
	// Batches already sent resolve by themselves, by the lease deadline at
	// the latest.
	w.mu.Lock()
	for len(w.inflight) > 0 {
		ch := w.progress
		w.mu.Unlock()
		<-ch
		w.mu.Lock()
	}
	cause := w.err
	if cause == nil {
		w.err = ErrClosed
	}
	tail, lastTick, term := w.frontier, w.clock.last, w.grant.Term
	// A clean release keeps the cache: every entry is a landed slot's
	// content, still true for readers lagging behind. Only a lost lease
	// drops them (stopLocked). Tail readers go back to the store.
	if w.cfg.Tail != nil {
		w.cfg.Tail.Forget(w.cfg.PChannel)
	}
	w.signalLocked()
	w.mu.Unlock()

	w.stopRenew()
	<-w.renewDone
	if cause == nil || !errors.Is(cause, ErrFenced) {
		rctx, cancel := context.WithTimeout(context.Background(), 4*w.cfg.GetTimeout)
		err := w.leases.Release(rctx, w.cfg.PChannel, term, w.nonce, tail, lastTick)
		cancel()
		if err != nil && cause == nil {
			return fmt.Errorf("close %s: release lease: %w", w.cfg.PChannel, err)
		}
	}
	if cause != nil && !errors.Is(cause, ErrClosed) {
		return fmt.Errorf("close %s: writer had stopped: %w", w.cfg.PChannel, cause)
	}
	return nil
}

func isTimeTickOnly(b *Batch) bool {
	for i := range b.Messages {
		if b.Messages[i].Type != TypeTimeTick {
			return false
		}
	}
	return len(b.Messages) > 0
}

// timeTickLoop persists one timetick-only batch after each run of data,
// once the pchannel has been quiet for TimeTickInterval.
func (w *Writer) timeTickLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.TimeTickInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		w.stats.TimeTickChecks++
		now := w.cfg.Now()
		// Not past the lease deadline: a thawed process's tick would pass
		// tt_max and stop the writer before its renew lands.
		due := w.err == nil && !w.closing && w.dataSinceTick && len(w.queue) == 0 && len(w.inflight) == 0 &&
			now.Sub(w.lastActivity) >= w.cfg.TimeTickInterval && now.Before(w.grant.Deadline)
		w.mu.Unlock()
		if due {
			// An error here is the writer's own (it stops); nothing to do.
			_, _ = w.AppendControl(ctx, Message{Type: TypeTimeTick})
		}
	}
}
