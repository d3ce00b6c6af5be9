package segmentlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Transactions on a single WAL, scoped to one vchannel.
//
// The holder buffers a transaction's messages and writes it at commit as
// one batch object: a TxnBegin, the body messages and a TxnCommit carrying
// an idempotency key. One object lands or does not, so every reader, from
// any start position, sees the whole transaction or nothing of it, at the
// commit's timetick — with no reader-side buffering. A transaction not
// committed when its writer stops never reached the WAL: that is how the
// fence of a newer term aborts it (docs/protocol.md "Fence" rule 6), and why the
// checkpoint can never pass an open transaction's begin ("Flush" rule 5).
// The commit's key is remembered in the idempotency window, which survives
// failover, so a retried commit gets the same answer on whichever term it
// reaches (I8).

// Transaction errors.
var (
	// ErrTxnExpired: the transaction's keepalive lapsed; it was rolled back.
	ErrTxnExpired = errors.New("segmentlog: transaction expired")
	// ErrTxnNotFound: no open or committed transaction has this ID here: it
	// was rolled back, expired, aborted by a failover, or never existed. It
	// was not committed.
	ErrTxnNotFound = errors.New("segmentlog: transaction not found (not committed)")
	// ErrTxnInvalid: the call does not fit the transaction (other vchannel,
	// too large, bad keepalive).
	ErrTxnInvalid = errors.New("segmentlog: invalid transaction operation")
)

// txnProducer is the idempotency-key producer of transaction commits; user
// keys cannot collide with it because ValidateName rejects the leading '@'.
const txnProducer = "@txn"

// MaxTxnKeepalive bounds a transaction's keepalive.
const MaxTxnKeepalive = 10 * time.Minute

type txnState struct {
	id        uint64
	vchannel  string
	keepalive time.Duration
	deadline  time.Time // keepalive lapses then
	msgs      []Message
	bytes     int
}

func txnKey(id uint64) IdemKey { return IdemKey{Producer: txnProducer, Seq: id} }

// OpenTxns returns how many transactions are open: begun, neither
// committed nor rolled back, and within their keepalive. A writer closed
// with one open aborts it (a pool keeps such a writer warm).
func (w *Writer) OpenTxns() int {
	now := w.cfg.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, t := range w.txns {
		if !now.After(t.deadline) {
			n++
		}
	}
	return n
}

// BeginTxn opens a transaction on vchannel. It expires when no call touches
// it for keepalive. Nothing is written until CommitTxn.
func (w *Writer) BeginTxn(ctx context.Context, vchannel string, keepalive time.Duration) (uint64, error) {
	if err := ValidateName("vchannel", vchannel); err != nil {
		return 0, err
	}
	if keepalive <= 0 || keepalive > MaxTxnKeepalive {
		return 0, fmt.Errorf("%w: keepalive %v not in (0, %v]", ErrTxnInvalid, keepalive, MaxTxnKeepalive)
	}
	now := w.cfg.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.acceptingLocked(); err != nil {
		return 0, err
	}
	for id, t := range w.txns {
		if now.After(t.deadline) {
			delete(w.txns, id)
		}
	}
	w.txnSeq++
	id := w.grant.Term<<32 | w.txnSeq&0xffffffff
	w.txns[id] = &txnState{id: id, vchannel: vchannel, keepalive: keepalive, deadline: now.Add(keepalive)}
	return id, nil
}

// AppendTxn adds data messages of the transaction's vchannel to it. They
// are written, all together, by CommitTxn.
func (w *Writer) AppendTxn(ctx context.Context, id uint64, msgs ...Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, err := w.openTxnLocked(id)
	if err != nil {
		return err
	}
	size := t.bytes
	for i := range msgs {
		m := msgs[i]
		if m.VChannel != t.vchannel {
			return fmt.Errorf("%w: message %d is for vchannel %q, the transaction for %q", ErrTxnInvalid, i, m.VChannel, t.vchannel)
		}
		if err := validateAppend(&m); err != nil {
			return fmt.Errorf("txn %d: message %d: %w", id, i, err)
		}
		size += messageBytes(&m)
	}
	if size+2*messageBytes(&Message{VChannel: t.vchannel}) > w.cfg.MaxBatchBytes {
		return fmt.Errorf("txn %d: %w: a transaction is written as one batch of at most %d bytes", id, ErrTooLarge, w.cfg.MaxBatchBytes)
	}
	for _, m := range msgs {
		m.TxnID, m.TimeTick = id, 0
		t.msgs = append(t.msgs, m)
	}
	t.bytes = size
	t.deadline = w.cfg.Now().Add(t.keepalive)
	return nil
}

// RollbackTxn drops an open transaction. Nothing of it was written.
func (w *Writer) RollbackTxn(ctx context.Context, id uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.openTxnLocked(id); err != nil {
		return err
	}
	delete(w.txns, id)
	return nil
}

// CommitTxn writes the transaction as one batch and returns the acks of its
// body messages (the commit's own ack last). Retrying a commit — on this
// writer or on the next holder after a failover — returns the same acks'
// commit ID if it landed, or ErrTxnNotFound if it did not: a transaction is
// never reported aborted after its commit landed.
func (w *Writer) CommitTxn(ctx context.Context, id uint64) ([]Ack, error) {
	w.mu.Lock()
	t, ok := w.txns[id]
	if !ok {
		e, known := w.dedup.lookup(txnKey(id))
		var wait <-chan struct{}
		if known {
			wait = w.dedup.waitFor(e)
		}
		w.mu.Unlock()
		if !known {
			return nil, fmt.Errorf("commit txn %d: %w", id, ErrTxnNotFound)
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("commit txn %d: %w: %w", id, ErrOutcomeUnknown, ctx.Err())
		}
		if e.err != nil {
			return nil, fmt.Errorf("commit txn %d: %w", id, e.err)
		}
		return []Ack{{ID: e.id, TimeTick: e.tick, Duplicate: true}}, nil
	}
	if w.cfg.Now().After(t.deadline) {
		delete(w.txns, id)
		w.mu.Unlock()
		return nil, fmt.Errorf("commit txn %d: %w after %v without activity", id, ErrTxnExpired, t.keepalive)
	}
	delete(w.txns, id)
	w.mu.Unlock()

	ka := strconv.FormatInt(t.keepalive.Milliseconds(), 10)
	batch := make([]Message, 0, len(t.msgs)+2)
	batch = append(batch, Message{Type: TypeTxnBegin, VChannel: t.vchannel, TxnID: id, Properties: map[string]string{"keepalive_ms": ka}})
	batch = append(batch, t.msgs...)
	batch = append(batch, Message{Type: TypeTxnCommit, VChannel: t.vchannel, TxnID: id, Key: txnKey(id)})
	acks, err := w.appendChecked(ctx, func(*Message) error { return nil }, batch, nil, false)
	if err != nil {
		return nil, fmt.Errorf("commit txn %d: %w", id, err)
	}
	return acks[1:], nil
}

// openTxnLocked returns an open, unexpired transaction.
func (w *Writer) openTxnLocked(id uint64) (*txnState, error) {
	if err := w.acceptingLocked(); err != nil {
		return nil, err
	}
	t, ok := w.txns[id]
	if !ok {
		return nil, fmt.Errorf("txn %d: %w", id, ErrTxnNotFound)
	}
	if w.cfg.Now().After(t.deadline) {
		delete(w.txns, id)
		return nil, fmt.Errorf("txn %d: %w after %v without activity", id, ErrTxnExpired, t.keepalive)
	}
	return t, nil
}
