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

// appendReq is one Append call's fresh messages on their way to a batch.
type appendReq struct {
	msgs  []Message
	bytes int
	enq   time.Time
	done  chan struct{} // closed when acks or err is set
	acks  []Ack
	err   error
	at    *uint64 // AppendAt: the only slot this append may land in
}

// putJob is one batch object from assignment of its slot to its ack.
type putJob struct {
	batch    Batch
	reqs     []*appendReq
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
func (w *Writer) Append(ctx context.Context, msgs ...Message) ([]Ack, error) {
	return w.appendChecked(ctx, validateAppend, msgs, nil)
}

// AppendAt is Append on a condition: the messages land as one batch at slot
// offset, or not at all — if the next slot is another when their turn
// comes (earlier appends, timetick batches, another holder), it fails with
// an error wrapping ErrOffsetMismatch and writes nothing. The check and the
// slot assignment happen together, so no other batch can slip between them.
func (w *Writer) AppendAt(ctx context.Context, offset uint64, msgs ...Message) ([]Ack, error) {
	return w.appendChecked(ctx, validateAppend, msgs, &offset)
}

// AppendControl appends control messages (create or drop vchannel, flush,
// broadcast, timetick) exactly like Append. It is for Cairn's own
// components (the coordinator, the flusher); transactions have their own
// calls.
func (w *Writer) AppendControl(ctx context.Context, msgs ...Message) ([]Ack, error) {
	return w.appendChecked(ctx, validateControl, msgs, nil)
}

func (w *Writer) appendChecked(ctx context.Context, validate func(*Message) error, msgs []Message, at *uint64) ([]Ack, error) {
	msgs, size, err := checkMessages(w.cfg.PChannel, validate, msgs, w.cfg.MaxBatchBytes)
	if err != nil {
		return nil, err
	}

	acks := make([]Ack, len(msgs))
	type dup struct {
		i int
		e *dedupEntry
	}
	var dups []dup
	var fresh []Message
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
					dups = append(dups, dup{i, e})
				}
				continue
			}
			if m.Type == TypeBroadcast {
				if dl, _ := broadcastDeadline(&m); w.cfg.Now().After(dl) {
					// Nothing of this call is written: free the keys the
					// earlier messages took (under the lock that guards
					// the window).
					for _, f := range freshIdx {
						if k := msgs[f].Key; !k.IsZero() {
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
		m.TimeTick = 0
		fresh = append(fresh, m)
		freshIdx = append(freshIdx, i)
	}
	var req *appendReq
	if len(fresh) > 0 {
		req = &appendReq{msgs: fresh, bytes: size, enq: w.cfg.Now(), done: make(chan struct{}), at: at}
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
		if req.err != nil {
			return nil, fmt.Errorf("append %s: %w", w.cfg.PChannel, req.err)
		}
		for k, i := range freshIdx {
			acks[i] = req.acks[k]
		}
	}
	for _, d := range dups {
		select {
		case <-d.e.wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("append %s: %w: %w", w.cfg.PChannel, ErrOutcomeUnknown, ctx.Err())
		}
		if d.e.err != nil {
			return nil, fmt.Errorf("append %s: first copy of idempotency key: %w", w.cfg.PChannel, d.e.err)
		}
		acks[d.i] = Ack{ID: d.e.id, TimeTick: d.e.tick, Duplicate: true}
	}
	return acks, nil
}

// checkMessages validates a copy of msgs (validate may fill in fields; the
// caller's slice stays as it was) and returns it with its size, refusing
// what does not fit in one batch of maxBytes.
func checkMessages(pchannel string, validate func(*Message) error, msgs []Message, maxBytes int) ([]Message, int, error) {
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
		size += messageBytes(&msgs[i])
	}
	if size > maxBytes {
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

// buildLocked takes queued appends up to MaxBatchBytes into one batch at the
// next slot and stamps their timeticks.
func (w *Writer) buildLocked() (*putJob, error) {
	now := w.cfg.Now()
	job := &putJob{batch: Batch{Kind: KindData, Term: w.grant.Term, Offset: w.next, Nonce: w.nonceB}}
	total, n := 0, 0
	for n < len(w.queue) && (n == 0 || total+w.queue[n].bytes <= w.cfg.MaxBatchBytes && w.queue[n].at == nil) &&
		len(job.batch.Messages)+len(w.queue[n].msgs) <= MaxMessages {
		req := w.queue[n]
		req.acks = make([]Ack, len(req.msgs))
		for i := range req.msgs {
			t, err := w.clock.next(now)
			if err != nil {
				return nil, err
			}
			req.msgs[i].TimeTick = t
			req.acks[i] = Ack{ID: MessageID{Offset: w.next, Index: uint32(len(job.batch.Messages))}, TimeTick: t}
			job.batch.Messages = append(job.batch.Messages, req.msgs[i])
		}
		job.reqs = append(job.reqs, req)
		total += req.bytes
		n++
		if req.at != nil {
			break // a conditional append is alone in its batch
		}
	}
	w.queue = w.queue[n:]
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
		w.finishLocked(req, fmt.Errorf("%w: expected offset %d, the next slot is %d; nothing was written", ErrOffsetMismatch, *req.at, w.next))
	}
}

// failQueueLocked fails every append that was never sent.
func (w *Writer) failQueueLocked(cause error) {
	for _, req := range w.queue {
		w.finishLocked(req, fmt.Errorf("writer stopped, nothing was written: %w", cause))
	}
	w.queue, w.queued = nil, 0
}

// put sends one batch and resolves it.
func (w *Writer) put(job *putJob) {
	data, err := job.batch.Encode()
	if err == nil {
		job.size = len(data)
		var landed bool
		var existing []byte
		landed, existing, err = w.putSlot(context.Background(), job.batch.Offset, data, summarize(&job.batch))
		if err == nil && !landed {
			err = w.classifyTaken(job.batch.Offset, existing)
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
	for _, req := range j.reqs {
		for i, m := range req.msgs {
			if !m.Key.IsZero() {
				w.dedup.commit(m.Key, req.acks[i].ID, req.acks[i].TimeTick, now)
			}
		}
		close(req.done)
	}
}

func (w *Writer) failJobLocked(j *putJob, err error) {
	for _, req := range j.reqs {
		w.finishLocked(req, err)
	}
}

// finishLocked fails one append and frees its idempotency keys.
func (w *Writer) finishLocked(req *appendReq, err error) {
	for _, m := range req.msgs {
		if !m.Key.IsZero() {
			w.dedup.fail(m.Key, err)
		}
	}
	req.acks, req.err = nil, err
	close(req.done)
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
