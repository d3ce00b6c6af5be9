package segmentlog

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Transactions in a shared term (docs/protocol.md, "Shared transactions").
//
// A shared term has no process that lives from a transaction's begin to its
// commit — each call may reach another Lambda environment, and none runs
// between calls — so the transaction lives in the store: one record per
// transaction (shared_txn_record.go), created at begin, appended to by
// CAS, and sealed by CAS at commit before the commit writes it to the WAL
// as one batch (begin, bodies, commit with the idempotency key ("@txn", 0,
// id)), exactly as an exclusive writer does (txn.go). The seal is what
// makes an acknowledged append part of the commit: an append lands only on
// an open record, and the commit writes the record it sealed, so an append
// either landed before the seal (and is in the batch) or is refused
// (ErrTxnSealed) — never acknowledged and then left out. Any environment
// may serve any call; a retried commit writes the sealed record again,
// which the idempotency key turns into a duplicate if the first try
// landed. Transaction IDs carry no term: terms change under shared mode.

// ErrTxnSealed: the transaction is being committed (its commit sealed it):
// it takes no more appends and cannot be rolled back. Nothing of the
// refused call was written.
var ErrTxnSealed = errors.New("segmentlog: transaction sealed by its commit")

// errPastWriteBy: a shared transaction's commit batch was not sent before
// its seal window closed; nothing was written by this call.
var errPastWriteBy = errors.New("segmentlog: seal window closed")

// newSharedTxnID draws a transaction ID: sharedTxnBit and 63 random bits.
func newSharedTxnID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return binary.LittleEndian.Uint64(b[:]) | sharedTxnBit
}

func newAppendNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// BeginTxn opens a transaction on vchannel, kept in the store: any
// SharedWriter of the pchannel, in any process, takes its later calls. It
// expires when no begin or append touches it for keepalive. Nothing is
// written to the WAL until CommitTxn.
func (sw *SharedWriter) BeginTxn(ctx context.Context, vchannel string, keepalive time.Duration) (uint64, error) {
	if err := ValidateName("vchannel", vchannel); err != nil {
		return 0, err
	}
	if keepalive <= 0 || keepalive > MaxTxnKeepalive {
		return 0, fmt.Errorf("%w: keepalive %v not in (0, %v]", ErrTxnInvalid, keepalive, MaxTxnKeepalive)
	}
	keepalive = keepalive.Round(time.Millisecond)
	if keepalive == 0 {
		keepalive = time.Millisecond
	}
	now := sw.cfg.Now().UTC().Round(0)
	for {
		r := txnRecord{Format: txnRecordFormat, Version: 1, PChannel: sw.cfg.PChannel, VChannel: vchannel,
			ID: newSharedTxnID(), State: txnOpen, KeepaliveMS: keepalive.Milliseconds(), Created: now, Touched: now}
		err := sw.txns().create(ctx, r)
		if err == nil {
			return r.ID, nil
		}
		if !errors.Is(err, errIDTaken) {
			return 0, fmt.Errorf("begin txn on %s: %w", vchannel, err)
		}
	}
}

// AppendTxn adds data messages of the transaction's vchannel to it. It
// fails with ErrTxnSealed once a commit sealed it, ErrTxnExpired once its
// keepalive lapsed, ErrTxnNotFound once it was rolled back or committed,
// and ErrTooLarge when the transaction would no longer fit one batch. An
// error wrapping ErrOutcomeUnknown means the messages may have been added.
func (sw *SharedWriter) AppendTxn(ctx context.Context, id uint64, msgs ...Message) error {
	if len(msgs) == 0 {
		return fmt.Errorf("txn %d: %w: an append of no messages", id, ErrTxnInvalid)
	}
	msgs = slices.Clone(msgs)
	for i := range msgs {
		if err := validateAppend(&msgs[i]); err != nil {
			return fmt.Errorf("txn %d: message %d: %w", id, i, err)
		}
		msgs[i].TxnID, msgs[i].TimeTick = id, 0
	}
	nonce := newAppendNonce()
	_, sent, err := sw.txns().update(ctx, id, func(r *txnRecord) (bool, error) {
		if slices.Contains(r.Appends, nonce) {
			return false, nil // an earlier attempt whose reply was lost landed
		}
		if err := sw.txnWritable(r); err != nil {
			return false, err
		}
		size := r.Bytes
		for i := range msgs {
			if msgs[i].VChannel != r.VChannel {
				return false, fmt.Errorf("%w: message %d is for vchannel %q, the transaction for %q", ErrTxnInvalid, i, msgs[i].VChannel, r.VChannel)
			}
			size += messageBytes(&msgs[i])
		}
		if size+2*messageBytes(&Message{VChannel: r.VChannel}) > sw.cfg.MaxBatchBytes || r.Messages+len(msgs)+2 > MaxMessages {
			return false, fmt.Errorf("%w: a transaction is written as one batch of at most %d bytes", ErrTooLarge, sw.cfg.MaxBatchBytes)
		}
		have, err := r.messages()
		if err != nil {
			return false, err
		}
		if err := r.setMessages(append(have, msgs...)); err != nil {
			return false, err
		}
		r.Bytes = size
		r.Appends = append(r.Appends, nonce)
		r.Touched = sw.cfg.Now().UTC().Round(0)
		return true, nil
	})
	return sw.txnCallErr(ctx, id, "append", err, sent)
}

// errExpiredNow: decide found an open record past its keepalive.
var errExpiredNow = errors.New("segmentlog: keepalive lapsed")

// txnWritable says whether r takes an append, a rollback or a seal.
func (sw *SharedWriter) txnWritable(r *txnRecord) error {
	switch {
	case r.State == txnSealed:
		return ErrTxnSealed
	case r.State == txnAborted && r.Reason == txnExpired:
		return fmt.Errorf("%w after %v without activity", ErrTxnExpired, r.keepalive())
	case r.State == txnAborted, r.State == txnCommitted:
		return ErrTxnNotFound
	case r.expired(sw.cfg.Now()):
		return errExpiredNow
	}
	return nil
}

// expire marks an open record whose keepalive lapsed aborted, by CAS, so
// that no call with a slower clock takes it later, and answers
// ErrTxnExpired; a commit that sealed it first wins.
func (sw *SharedWriter) expire(ctx context.Context, id uint64) error {
	r, _, err := sw.txns().update(ctx, id, func(r *txnRecord) (bool, error) {
		if r.State != txnOpen {
			return false, nil
		}
		r.end(sw.cfg.Now(), nil, txnExpired)
		return true, nil
	})
	switch {
	case errors.Is(err, errTxnGone):
		return fmt.Errorf("txn %d: %w", id, ErrTxnNotFound)
	case err != nil:
		return fmt.Errorf("txn %d: %w", id, err)
	case r.State == txnSealed:
		return fmt.Errorf("txn %d: %w", id, ErrTxnSealed)
	case r.State == txnAborted && r.Reason == txnExpired:
		return fmt.Errorf("txn %d: %w after %v without activity", id, ErrTxnExpired, r.keepalive())
	}
	return fmt.Errorf("txn %d: %w", id, ErrTxnNotFound)
}

// RollbackTxn aborts an open transaction: nothing of it is written. It
// fails with ErrTxnSealed once a commit sealed it. A retried rollback whose
// first try landed succeeds while the record is kept (TxnRetention).
func (sw *SharedWriter) RollbackTxn(ctx context.Context, id uint64) error {
	_, sent, err := sw.txns().update(ctx, id, func(r *txnRecord) (bool, error) {
		if r.State == txnAborted && r.Reason == txnRolledBack {
			return false, nil
		}
		if err := sw.txnWritable(r); err != nil {
			return false, err
		}
		r.end(sw.cfg.Now(), nil, txnRolledBack)
		return true, nil
	})
	return sw.txnCallErr(ctx, id, "rollback", err, sent)
}

// txnCallErr is the answer of an append or rollback (call) to txn id whose
// record update ended with err: the transaction gone is ErrTxnNotFound,
// or outcome-unknown when one of the call's writes may have landed (sent)
// before it went; one found past its keepalive is expired now.
func (sw *SharedWriter) txnCallErr(ctx context.Context, id uint64, call string, err error, sent bool) error {
	switch {
	case errors.Is(err, errTxnGone) && sent:
		return fmt.Errorf("txn %d: %w: the transaction ended while the %s's reply was lost", id, ErrOutcomeUnknown, call)
	case errors.Is(err, errTxnGone):
		return fmt.Errorf("txn %d: %w", id, ErrTxnNotFound)
	case errors.Is(err, errExpiredNow):
		return sw.expire(ctx, id)
	case err != nil:
		return fmt.Errorf("txn %d: %w", id, err)
	}
	return nil
}

// CommitTxn seals the transaction, then writes it as one batch and returns
// the acks of its body messages (the commit's own ack last). Any
// SharedWriter of the pchannel may commit, or retry a commit: one whose
// first try landed gets only the commit's ack, marked Duplicate (from the
// record while it is kept, else from the idempotency window); one that
// never landed gets ErrTxnNotFound once TxnSealWindow and a settle time
// passed its seal (no PUT of it can land after), and an error wrapping
// ErrOutcomeUnknown in between. A transaction past its keepalive is
// aborted: ErrTxnExpired.
func (sw *SharedWriter) CommitTxn(ctx context.Context, id uint64) ([]Ack, error) {
	r, _, err := sw.txns().update(ctx, id, func(r *txnRecord) (bool, error) {
		switch r.State {
		case txnSealed, txnCommitted:
			return false, nil // sealed by an earlier try: write it (again), or answer it
		}
		if err := sw.txnWritable(r); err != nil {
			return false, err
		}
		r.State, r.Sealed = txnSealed, sw.cfg.Now().UTC().Round(0)
		return true, nil
	})
	switch {
	case errors.Is(err, errTxnGone):
		// Never begun, or collected: the idempotency window knows
		// whether a commit landed, and none can land any more.
		return sw.committed(ctx, id, true)
	case errors.Is(err, errExpiredNow):
		return nil, sw.expire(ctx, id)
	case err != nil:
		return nil, fmt.Errorf("commit txn %d: %w", id, err)
	case r.State == txnCommitted:
		c := r.Commit
		return []Ack{{ID: MessageID{Offset: c.Offset, Index: c.Index}, TimeTick: c.TimeTick, Duplicate: true}}, nil
	}
	body, err := r.messages()
	if err != nil {
		return nil, fmt.Errorf("commit txn %d: %w", id, err)
	}
	ka := strconv.FormatInt(r.KeepaliveMS, 10)
	batch := make([]Message, 0, len(body)+2)
	batch = append(batch, Message{Type: TypeTxnBegin, VChannel: r.VChannel, TxnID: id, Properties: map[string]string{"keepalive_ms": ka}})
	batch = append(batch, body...)
	batch = append(batch, Message{Type: TypeTxnCommit, VChannel: r.VChannel, TxnID: id, Key: txnKey(id)})
	acks, err := sw.appendBy(ctx, func(*Message) error { return nil }, batch, nil, r.writeBy())
	switch {
	case errors.Is(err, errPastWriteBy):
		// This try came too late to send the batch; an earlier one may
		// have landed it.
		return sw.committed(ctx, id, sw.cfg.Now().After(r.writeBy().Add(txnSettle)))
	case err != nil:
		return nil, fmt.Errorf("commit txn %d: %w", id, err)
	}
	sw.endTxn(ctx, id, &acks[len(acks)-1], "")
	if len(acks) == 1 && acks[0].Duplicate {
		return acks, nil
	}
	return acks[1:], nil
}

// endTxn records how a sealed transaction ended — committed with the
// commit's ack, or aborted for reason — best effort: the WAL decides, the
// record only answers retries sooner.
func (sw *SharedWriter) endTxn(ctx context.Context, id uint64, commit *Ack, reason string) {
	_, _, err := sw.txns().update(ctx, id, func(r *txnRecord) (bool, error) {
		if r.State != txnSealed {
			return false, nil
		}
		r.end(sw.cfg.Now(), commit, reason)
		return true, nil
	})
	if err != nil && !errors.Is(err, errTxnGone) {
		sw.core.log.Info("transaction record not updated; maintenance collects it", "txn", id, "err", err)
	}
}

// committed answers a commit that will send nothing from the idempotency
// window, folded up to the tail: the commit's ack (Duplicate) if it landed;
// else, if settled (no PUT of the commit can land any more),
// ErrTxnNotFound, and the record ends aborted; else ErrOutcomeUnknown.
func (sw *SharedWriter) committed(ctx context.Context, id uint64, settled bool) ([]Ack, error) {
	ack, ok, err := sw.lookupCommit(ctx, id)
	switch {
	case err != nil:
		return nil, fmt.Errorf("commit txn %d: %w", id, err)
	case ok:
		sw.endTxn(ctx, id, &ack, "")
		return []Ack{ack}, nil
	case settled:
		sw.endTxn(ctx, id, nil, txnNotWritten)
		return nil, fmt.Errorf("commit txn %d: %w", id, ErrTxnNotFound)
	}
	return nil, fmt.Errorf("commit txn %d: %w: its seal window closed; a batch sent inside it may still land (retry after %v)", id, ErrOutcomeUnknown, txnSettle)
}

// lookupCommit folds the log up to its first empty slot and looks the
// transaction's commit key up in the idempotency window.
func (sw *SharedWriter) lookupCommit(ctx context.Context, id uint64) (Ack, bool, error) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	defer sw.publish()
	if sw.err != nil {
		return Ack{}, false, fmt.Errorf("shared writer stopped: %w", sw.err)
	}
	ctx, cancel := context.WithTimeout(ctx, sw.cfg.PutRetryLimit+sw.cfg.GetTimeout)
	defer cancel()
	if err := sw.catchUp(ctx); err != nil {
		return Ack{}, false, sw.fail(err)
	}
	sw.core.mu.Lock()
	defer sw.core.mu.Unlock()
	e, ok := sw.core.dedup.lookup(txnKey(id))
	if !ok || !e.done {
		return Ack{}, false, nil
	}
	return Ack{ID: e.id, TimeTick: e.tick, Duplicate: true}, true, nil
}
