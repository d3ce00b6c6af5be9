package segmentlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// The transaction record of shared write mode: one JSON object per
// transaction, {prefix}/meta/txns/{pchannel}/{id:020d}.json, created with
// PutIfAbsent and changed only with PutIfMatch (docs/protocol.md,
// "Shared transactions"). It holds the messages appended so far, as an
// encoded data batch (the WAL format of doc.go, timeticks 1…n standing in
// for the real ones), so the commit needs nothing but the record. The calls
// never delete it — it ends committed or aborted, without its messages —
// and CollectTxns (the maintenance round) deletes it later; so a node needs
// no delete permission.

// txnRecordFormat is the format number of the transaction record.
const txnRecordFormat = 1

// Transaction record states.
const (
	txnOpen      = "open"      // takes appends
	txnSealed    = "sealed"    // a commit took it: no more appends; its batch may be written until Sealed + TxnSealWindow
	txnCommitted = "committed" // its batch landed (Commit names the commit's ack)
	txnAborted   = "aborted"   // rolled back, expired, or sealed and never written (Reason): never written
)

// TxnRetention is how long CollectTxns keeps a committed or aborted record
// after it ended: a retried call within it is answered from the record;
// later a retried commit is answered from the idempotency window.
const TxnRetention = time.Hour

// Reasons of an aborted record.
const (
	txnRolledBack = "rolled_back"
	txnExpired    = "expired"
	txnNotWritten = "not_written" // sealed, but no try sent its batch within the seal window
)

// TxnSealWindow bounds how long after its seal a shared transaction's
// commit batch may still be sent: no PUT of it starts later, so a commit
// retried after TxnSealWindow + txnSettle that finds no commit in the
// idempotency window knows it never landed. It must stay well below the
// idempotency window D (10 min), which answers retried commits.
const TxnSealWindow = 2 * time.Minute

// txnSettle is how long after TxnSealWindow a PUT sent inside it may still
// land: R_put (1.5 s) and clock skew between environments, with room.
const txnSettle = 30 * time.Second

// sharedTxnBit marks the IDs of shared transactions: an exclusive writer's
// IDs are term<<32 | seq, with a term far below 2^31, so the two never
// meet in the idempotency window.
const sharedTxnBit = 1 << 63

// errTxnGone: the record is not in the store (deleted after a commit, a
// rollback or by collection, or never created).
var errTxnGone = errors.New("segmentlog: transaction record gone")

// errIDTaken: a new record's ID is another transaction's (drawn twice).
var errIDTaken = errors.New("segmentlog: transaction ID taken")

// TxnPrefix is the prefix of every shared transaction record.
func (l Layout) TxnPrefix() string { return l.join("meta", "txns") + "/" }

// Txn is the key of shared transaction id of pchannel p.
func (l Layout) Txn(p string, id uint64) string {
	return l.join("meta", "txns", p, fmt.Sprintf("%020d.json", id))
}

// parseTxnKey returns the pchannel and ID a transaction record key names.
func (l Layout) parseTxnKey(key string) (string, uint64, bool) {
	rest, ok := strings.CutPrefix(key, l.TxnPrefix())
	if !ok {
		return "", 0, false
	}
	p, file, ok := strings.Cut(rest, "/")
	name, isJSON := strings.CutSuffix(file, ".json")
	if !ok || !isJSON || len(name) != 20 {
		return "", 0, false
	}
	id, err := strconv.ParseUint(name, 10, 64)
	return p, id, err == nil
}

// txnRecord is the JSON form of a shared transaction.
type txnRecord struct {
	Format      int       `json:"format"`
	Version     uint64    `json:"version"`
	PChannel    string    `json:"pchannel"`
	VChannel    string    `json:"vchannel"`
	ID          uint64    `json:"id,string"`
	State       string    `json:"state"`
	Reason      string    `json:"reason,omitempty"`
	KeepaliveMS int64     `json:"keepalive_ms"`
	Created     time.Time `json:"created"`
	Touched     time.Time `json:"touched"` // the last begin or append: the keepalive runs from it
	Sealed      time.Time `json:"sealed,omitzero"`
	Ended       time.Time `json:"ended,omitzero"` // committed or aborted then
	Commit      *txnAck   `json:"commit,omitempty"`
	// Appends names every append the record holds (a nonce each), so that
	// an append whose CAS reply was lost finds out whether it landed.
	Appends  []string `json:"appends,omitempty"`
	Messages int      `json:"messages"`
	Bytes    int      `json:"bytes"`          // messageBytes of the messages, for the batch limit
	Body     []byte   `json:"body,omitempty"` // the messages: an encoded data batch; none when empty
}

// txnAck is the ack of a committed transaction's commit message.
type txnAck struct {
	Offset   uint64 `json:"offset"`
	Index    uint32 `json:"index"`
	TimeTick uint64 `json:"timetick"`
}

// end makes r final: committed with the commit's ack, or aborted for
// reason; its messages are dropped. A committed record keeps the nonces of
// its appends: an append whose reply was lost and that reads the record
// only now learns that it is in the commit.
func (r *txnRecord) end(now time.Time, commit *Ack, reason string) {
	r.Body, r.Messages, r.Bytes = nil, 0, 0
	r.Ended = now.UTC().Round(0)
	if commit != nil {
		r.State, r.Reason = txnCommitted, ""
		r.Commit = &txnAck{Offset: commit.ID.Offset, Index: commit.ID.Index, TimeTick: commit.TimeTick}
		return
	}
	r.State, r.Reason, r.Appends = txnAborted, reason, nil
}

func (r *txnRecord) keepalive() time.Duration { return time.Duration(r.KeepaliveMS) * time.Millisecond }

// expired reports whether an open record's keepalive lapsed at now.
func (r *txnRecord) expired(now time.Time) bool {
	return r.State == txnOpen && now.After(r.Touched.Add(r.keepalive()))
}

// writeBy is when a sealed record's batch stops being sent.
func (r *txnRecord) writeBy() time.Time { return r.Sealed.Add(TxnSealWindow) }

// messages decodes the body: the transaction's messages, TxnID set, no
// timeticks.
func (r *txnRecord) messages() ([]Message, error) {
	if len(r.Body) == 0 {
		return nil, nil
	}
	b, err := DecodeBatch(r.Body)
	if err != nil {
		return nil, err
	}
	for i := range b.Messages {
		b.Messages[i].TimeTick = 0
	}
	return b.Messages, nil
}

// setMessages encodes msgs as the body.
func (r *txnRecord) setMessages(msgs []Message) error {
	if len(msgs) == 0 {
		r.Body, r.Messages = nil, 0
		return nil
	}
	b := Batch{Kind: KindData, Messages: make([]Message, len(msgs))}
	for i, m := range msgs {
		m.TimeTick = uint64(i + 1)
		b.Messages[i] = m
	}
	body, err := b.Encode()
	if err != nil {
		return err
	}
	r.Body, r.Messages = body, len(msgs)
	return nil
}

func (r *txnRecord) encode() ([]byte, error) { return json.Marshal(r) }

// decodeTxnRecord parses the record under key; every error wraps ErrCorrupt.
func decodeTxnRecord(key string, p string, id uint64, data []byte) (txnRecord, error) {
	var r txnRecord
	bad := func(format string, args ...any) (txnRecord, error) {
		return txnRecord{}, fmt.Errorf("%w: transaction record %s: %s", ErrCorrupt, key, fmt.Sprintf(format, args...))
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return bad("%v", err)
	}
	switch {
	case r.Format != txnRecordFormat:
		return bad("format %d, this build reads %d", r.Format, txnRecordFormat)
	case r.PChannel != p || r.ID != id:
		return bad("names %s/%d", r.PChannel, r.ID)
	case r.State != txnOpen && r.State != txnSealed && r.State != txnCommitted && r.State != txnAborted:
		return bad("state %q", r.State)
	case (r.State == txnCommitted) != (r.Commit != nil):
		return bad("state %s with commit %v", r.State, r.Commit)
	case (r.State == txnCommitted || r.State == txnAborted) && (r.Ended.IsZero() || len(r.Body) > 0):
		return bad("ended without an end time, or with its messages")
	case r.KeepaliveMS <= 0 || r.keepalive() > MaxTxnKeepalive:
		return bad("keepalive %d ms", r.KeepaliveMS)
	case r.State == txnSealed && r.Sealed.IsZero():
		return bad("sealed without a seal time")
	}
	msgs, err := r.messages()
	if err != nil {
		return bad("body: %v", err)
	}
	if len(msgs) != r.Messages {
		return bad("%d messages in the body, %d in the record", len(msgs), r.Messages)
	}
	for i := range msgs {
		if msgs[i].VChannel != r.VChannel || msgs[i].TxnID != r.ID || !msgs[i].Type.IsData() {
			return bad("message %d is no data message of the transaction", i)
		}
	}
	return r, nil
}

// txnStore reads and changes one pchannel's transaction records.
type txnStore struct {
	store    objstore.Store
	layout   Layout
	pchannel string
	put, get time.Duration // per-attempt timeouts
	retryFor time.Duration // how long transient failures are retried
	now      func() time.Time
}

func (sw *SharedWriter) txns() txnStore {
	c := sw.cfg
	return txnStore{store: sw.core.store, layout: c.Layout, pchannel: c.PChannel,
		put: c.PutTimeout, get: c.GetTimeout, retryFor: c.PutRetryLimit, now: c.Now}
}

// read returns the record of id and its ETag; errTxnGone if there is none.
func (ts txnStore) read(ctx context.Context, id uint64) (txnRecord, string, error) {
	key := ts.layout.Txn(ts.pchannel, id)
	giveUp := ts.now().Add(ts.retryFor)
	pauses := recoverBackoff.Start()
	for {
		actx, cancel := context.WithTimeout(ctx, ts.get)
		obj, err := ts.store.Get(actx, key)
		cancel()
		switch {
		case err == nil:
			r, err := decodeTxnRecord(key, ts.pchannel, id, obj.Body)
			return r, obj.ETag, err
		case errors.Is(err, objstore.ErrNotFound):
			return txnRecord{}, "", errTxnGone
		case ctx.Err() == nil && objstore.IsRetryable(err) && ts.now().Before(giveUp):
			if pauses.Wait(ctx) != nil {
				return txnRecord{}, "", ctx.Err()
			}
		default:
			return txnRecord{}, "", fmt.Errorf("read %s: %w", key, err)
		}
	}
}

// create writes a new record. A retry after a lost reply that finds the
// key taken reads it back: its own bytes are success, others' ErrExists
// (an ID drawn twice).
func (ts txnStore) create(ctx context.Context, r txnRecord) error {
	key := ts.layout.Txn(ts.pchannel, r.ID)
	body, err := r.encode()
	if err != nil {
		return err
	}
	giveUp := ts.now().Add(ts.retryFor)
	pauses := recoverBackoff.Start()
	for {
		actx, cancel := context.WithTimeout(ctx, ts.put)
		_, err := ts.store.PutIfAbsent(actx, key, body, nil)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, objstore.ErrExists):
			actx, cancel := context.WithTimeout(ctx, ts.get)
			obj, gerr := ts.store.Get(actx, key)
			cancel()
			if gerr == nil && bytes.Equal(obj.Body, body) {
				return nil // an earlier attempt landed
			}
			if gerr != nil && !errors.Is(gerr, objstore.ErrNotFound) {
				err = gerr
				break
			}
			if gerr == nil {
				return fmt.Errorf("create %s: %w", key, errIDTaken)
			}
			// Gone again (collected): try once more.
		}
		if ctx.Err() != nil || !(objstore.IsRetryable(err) || errors.Is(err, objstore.ErrExists) || errors.Is(err, objstore.ErrNotFound)) || !ts.now().Before(giveUp) {
			return fmt.Errorf("create %s: %w", key, err)
		}
		if pauses.Wait(ctx) != nil {
			return ctx.Err()
		}
	}
}

// update reads record id, lets decide change it (decide returns whether
// to write it back, or an error to stop with) and writes it back by CAS on
// the ETag it read. A lost race or a lost reply is settled by reading again
// and deciding afresh: decide must recognise its own change already made
// (an append its nonce, a seal or abort the state), so a change lands at
// most once. It returns the record as decided last. On errTxnGone, sent
// reports whether one of its writes may have landed before the record went.
func (ts txnStore) update(ctx context.Context, id uint64, decide func(r *txnRecord) (bool, error)) (r txnRecord, sent bool, err error) {
	key := ts.layout.Txn(ts.pchannel, id)
	giveUp := ts.now().Add(ts.retryFor)
	pauses := putBackoff.Start()
	for attempt := 0; ; attempt++ {
		r, etag, err := ts.read(ctx, id)
		if err != nil {
			return r, sent, err
		}
		write, err := decide(&r)
		if err != nil || !write {
			return r, sent, err
		}
		r.Version++
		body, err := r.encode()
		if err != nil {
			return r, sent, err
		}
		actx, cancel := context.WithTimeout(ctx, ts.put)
		_, err = ts.store.PutIfMatch(actx, key, body, etag)
		cancel()
		switch {
		case err == nil:
			return r, sent, nil
		case errors.Is(err, objstore.ErrConflict):
			// Changed, or gone, since the read: decide again.
		case objstore.IsRetryable(err) && ctx.Err() == nil:
			sent = true // it may have landed: the next read tells
		default:
			return r, sent, fmt.Errorf("update %s: %w", key, err)
		}
		if !ts.now().Before(giveUp) {
			return r, sent, fmt.Errorf("update %s: %w: still conflicting after %v: %w", key, ErrOutcomeUnknown, ts.retryFor, err)
		}
		if attempt > 0 && pauses.Wait(ctx) != nil {
			return r, sent, ctx.Err()
		}
	}
}

// remove deletes record id (CollectTxns only).
func (ts txnStore) remove(ctx context.Context, id uint64) error {
	actx, cancel := context.WithTimeout(ctx, ts.put)
	defer cancel()
	return ts.store.Delete(actx, ts.layout.Txn(ts.pchannel, id))
}

// TxnCollectStats counts what one CollectTxns round found and did.
type TxnCollectStats struct {
	Records int // transaction records listed
	Open    int // left alone: open and alive, sealed within their window, ended within TxnRetention
	Expired int // open past their keepalive: marked aborted
	Deleted int // records deleted
	Corrupt int // records that do not decode: left for an operator
}

// CollectTxns is the maintenance of shared transaction records: an open
// one whose keepalive lapsed is marked aborted by CAS (an append racing it
// then fails, never lands unseen); a committed or aborted one is deleted
// TxnRetention after it ended; a sealed one whose commit never finished is
// deleted once TxnSealWindow + 30 s passed its seal, when no PUT of its
// commit can still land (a retried commit then answers from the
// idempotency window). It costs one LIST when there are none. Errors on
// single records are joined and the round goes on.
func CollectTxns(ctx context.Context, store objstore.Store, layout Layout, now time.Time) (TxnCollectStats, error) {
	var st TxnCollectStats
	type item struct {
		p  string
		id uint64
	}
	var items []item
	err := store.List(ctx, layout.TxnPrefix(), "", func(a objstore.Attrs) error {
		if p, id, ok := layout.parseTxnKey(a.Key); ok {
			items = append(items, item{p, id})
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("collect transactions: %w", err)
	}
	var errs []error
	for _, it := range items {
		st.Records++
		ts := txnStore{store: store, layout: layout, pchannel: it.p, put: DefaultPutTimeout, get: time.Second,
			retryFor: 10 * time.Second, now: func() time.Time { return now }}
		drop, expired := false, false
		_, _, err := ts.update(ctx, it.id, func(r *txnRecord) (bool, error) {
			drop, expired = false, false
			switch {
			case r.expired(now):
				r.end(now, nil, txnExpired)
				expired = true
				return true, nil
			case r.State == txnCommitted || r.State == txnAborted:
				drop = now.After(r.Ended.Add(TxnRetention))
			case r.State == txnSealed:
				drop = now.After(r.writeBy().Add(txnSettle))
			}
			return false, nil
		})
		switch {
		case errors.Is(err, errTxnGone):
			continue
		case errors.Is(err, ErrCorrupt):
			st.Corrupt++
			errs = append(errs, err)
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		case expired:
			st.Expired++
			continue
		case !drop:
			st.Open++
			continue
		}
		if err := ts.remove(ctx, it.id); err != nil {
			errs = append(errs, err)
			continue
		}
		st.Deleted++
	}
	return st, errors.Join(errs...)
}
