package system

import (
	"context"
	"errors"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/segmentlog"
)

// The pool beyond plain appends: control messages for the vchannel
// registry (coordinator.ControlWAL), transactions, and the Holder a
// coordinator.Node drives in `cairn serve`.

var (
	_ coordinator.ControlWAL = (*Pool)(nil)
	_ coordinator.Holder     = (*Pool)(nil)
)

// AppendControl appends control messages (create or drop vchannel) to
// pchannel through its warm writer, opening one if needed: the pool is the
// registry's coordinator.ControlWAL. The registry keys every control
// message, so an append that failed before it could land (fenced, writer
// closing) or whose lease lapsed is retried once on a fresh writer.
func (p *Pool) AppendControl(ctx context.Context, pchannel string, msgs ...segmentlog.Message) ([]segmentlog.Ack, error) {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var e *poolEntry
		if e, err = p.writer(ctx, pchannel); err != nil {
			return nil, err
		}
		var acks []segmentlog.Ack
		acks, err = e.w.AppendControl(ctx, msgs...)
		if err == nil || !retryable(err, msgs) || ctx.Err() != nil {
			return acks, err
		}
	}
	return nil, err
}

// BeginTxn opens a transaction on vchannel in pchannel's warm writer
// (opening one if needed) and returns the writer's term and the
// transaction's ID. An exclusive writer keeps the transaction in memory
// (the ID's high 32 bits are its term; it is aborted if the writer
// stops); a shared writer keeps it in a record in the bucket that any
// process's shared writer serves (docs/protocol.md, "Shared
// transactions").
func (p *Pool) BeginTxn(ctx context.Context, pchannel, vchannel string, keepalive time.Duration) (term, id uint64, err error) {
	e, err := p.writer(ctx, pchannel)
	if err != nil {
		return 0, 0, err
	}
	if e.sh != nil {
		id, err = e.sh.BeginTxn(ctx, vchannel, keepalive)
	} else {
		id, err = e.ex.BeginTxn(ctx, vchannel, keepalive)
	}
	return e.w.Term(), id, err
}

// AppendTxn adds msgs to open transaction id of pchannel.
func (p *Pool) AppendTxn(ctx context.Context, pchannel string, id uint64, msgs []segmentlog.Message) error {
	e, err := p.txnWriter(ctx, pchannel, id)
	if err != nil {
		return err
	}
	if e.sh != nil {
		return e.sh.AppendTxn(ctx, id, msgs...)
	}
	return e.ex.AppendTxn(ctx, id, msgs...)
}

// CommitTxn writes transaction id of pchannel as one batch. A retried
// commit is answered from the idempotency window by whichever writer holds
// the pchannel now (segmentlog.Writer.CommitTxn, SharedWriter.CommitTxn).
func (p *Pool) CommitTxn(ctx context.Context, pchannel string, id uint64) (uint64, []segmentlog.Ack, error) {
	e, err := p.writer(ctx, pchannel)
	if err != nil {
		return 0, nil, err
	}
	var acks []segmentlog.Ack
	if e.sh != nil {
		acks, err = e.sh.CommitTxn(ctx, id)
	} else {
		acks, err = e.ex.CommitTxn(ctx, id)
	}
	return e.w.Term(), acks, err
}

// RollbackTxn drops open transaction id of pchannel.
func (p *Pool) RollbackTxn(ctx context.Context, pchannel string, id uint64) error {
	e, err := p.txnWriter(ctx, pchannel, id)
	if err != nil {
		return err
	}
	if e.sh != nil {
		return e.sh.RollbackTxn(ctx, id)
	}
	return e.ex.RollbackTxn(ctx, id)
}

// txnWriter returns the writer that may hold transaction id. In shared
// mode that is any shared writer of pchannel (the record is in the
// bucket). Otherwise it is the warm writer of pchannel if its term is the
// one in the ID's high 32 bits: a transaction of another term was aborted
// when its writer stopped, so no writer is opened for it.
func (p *Pool) txnWriter(ctx context.Context, pchannel string, id uint64) (*poolEntry, error) {
	if p.cfg.WriteMode == WriteShared {
		return p.writer(ctx, pchannel)
	}
	p.mu.Lock()
	e := p.entries[pchannel]
	p.mu.Unlock()
	if e == nil || e.ex == nil || e.w.Err() != nil || e.w.Term() != id>>32 {
		return nil, segmentlog.ErrTxnNotFound
	}
	return p.writer(ctx, pchannel)
}

// Hold makes sure the pool has a running writer of pchannel: a warm one
// costs no request, a stopped one is replaced. While another holder's
// lease is live it fails with a *coordinator.HeldError. A parked pchannel
// (its idle writer closed, Config.IdleRelease) counts as held and costs
// no request either: the next append opens its writer. Together with
// Release it is the coordinator.Holder of a `cairn serve` node, whose
// Config.Holder must then be the node's ID.
func (p *Pool) Hold(ctx context.Context, pchannel string) error {
	p.mu.Lock()
	_, parked := p.parked[pchannel]
	p.mu.Unlock()
	if parked {
		return nil
	}
	_, err := p.entry(ctx, pchannel, false)
	var busy *BusyError
	if errors.As(err, &busy) {
		return &coordinator.HeldError{PChannel: pchannel, Holder: busy.Holder, RetryAfter: busy.RetryAfter}
	}
	return err
}

// Release closes the writer of pchannel, if the pool has one (waiting for
// an open in progress first), which releases its lease with its tail so
// that the next holder needs no expiry.
func (p *Pool) Release(ctx context.Context, pchannel string) error {
	p.mu.Lock()
	call := p.opening[pchannel]
	p.mu.Unlock()
	if call != nil {
		select {
		case <-call.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	e := p.entries[pchannel]
	if e != nil {
		delete(p.entries, pchannel)
	}
	delete(p.parked, pchannel)
	p.mu.Unlock()
	if e == nil {
		return nil
	}
	err := e.w.Close(ctx)
	if err != nil && !errors.Is(err, segmentlog.ErrFenced) {
		return err
	}
	p.log.Info("writer closed, lease released", "pchannel", pchannel)
	return nil
}
