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
	"github.com/cairnlog/cairn/infra/objstore/cas"
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

// txnStore reads and changes one pchannel's transaction records, each
// change a cas.Update.
type txnStore struct {
	store    objstore.Store
	layout   Layout
	pchannel string
	timeout  time.Duration // each request
	retryFor time.Duration // each create or update, retries included
}

func (sw *SharedWriter) txns() txnStore {
	c := sw.cfg
	return txnStore{store: sw.core.store, layout: c.Layout, pchannel: c.PChannel,
		timeout: max(c.PutTimeout, c.GetTimeout), retryFor: c.PutRetryLimit}
}

// create writes the new record r. A reply lost after it landed is
// recognised by cas.Update's next read, and so is a record that holds
// exactly r after a conditional write refused as a duplicate (a retry
// inside the store's client); a record there that is not r is another
// transaction's: errIDTaken (an ID drawn twice).
func (ts txnStore) create(ctx context.Context, r txnRecord) error {
	body, err := r.encode()
	if err != nil {
		return err
	}
	_, _, err = ts.cas(ctx, r.ID, func(cur cas.Record[txnRecord]) (txnRecord, error) {
		if !cur.Exists {
			return r, nil
		}
		if there, err := cur.Value.encode(); err == nil && bytes.Equal(there, body) {
			return r, cas.ErrUnchanged
		}
		return cur.Value, errIDTaken
	}, cas.From(cas.Record[txnRecord]{})) // a new ID: write at once, read only after a refusal
	return err
}

// update changes record id: decide changes the record read (it returns
// whether to write it back, or an error to stop with), and the write
// raises its version. A lost race or a lost reply is settled by
// cas.Update's policy, deciding afresh on what it reads: decide must
// recognise its own change already made (an append its nonce, a seal or
// abort the state), so a change lands at most once. It returns the record
// as decided last. A record not there is errTxnGone; sent reports whether
// one of its writes got no answer, and so may have landed before the
// record went.
func (ts txnStore) update(ctx context.Context, id uint64, decide func(r *txnRecord) (bool, error)) (r txnRecord, sent bool, err error) {
	return ts.cas(ctx, id, func(cur cas.Record[txnRecord]) (txnRecord, error) {
		if !cur.Exists {
			return txnRecord{}, errTxnGone
		}
		next := cur.Value
		write, err := decide(&next)
		switch {
		case err != nil:
			return next, err
		case !write:
			return next, cas.ErrUnchanged
		}
		next.Version++
		return next, nil
	})
}

// cas runs cas.Update on record id (with opts) for at most retryFor, and
// reports whether one of its writes got no answer. An outcome it leaves
// unknown is segmentlog's ErrOutcomeUnknown as well as cas's.
func (ts txnStore) cas(ctx context.Context, id uint64, decide cas.Decide[txnRecord], opts ...cas.Option[txnRecord]) (txnRecord, bool, error) {
	key := ts.layout.Txn(ts.pchannel, id)
	codec := cas.Codec[txnRecord]{
		Encode: func(r txnRecord) ([]byte, error) { return r.encode() },
		Decode: func(b []byte) (txnRecord, error) { return decodeTxnRecord(key, ts.pchannel, id, b) },
	}
	uctx, cancel := context.WithTimeout(ctx, ts.retryFor)
	defer cancel()
	sent := false
	opts = append(opts, cas.OnUnknown[txnRecord](func() { sent = true }))
	rec, err := cas.Update(uctx, ts.store, key, codec, cas.Policy{Timeout: ts.timeout, Backoff: putBackoff}, decide, opts...)
	switch {
	case errors.Is(err, cas.ErrOutcomeUnknown):
		err = fmt.Errorf("%s: %w: %w", key, ErrOutcomeUnknown, err)
	case err != nil && ctx.Err() == nil && uctx.Err() != nil:
		err = fmt.Errorf("%s: gave up after %v: %w", key, ts.retryFor, err)
	}
	return rec.Value, sent, err
}

// remove deletes record id (CollectTxns only).
func (ts txnStore) remove(ctx context.Context, id uint64) error {
	actx, cancel := context.WithTimeout(ctx, ts.timeout)
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
		ts := txnStore{store: store, layout: layout, pchannel: it.p, timeout: DefaultPutTimeout, retryFor: 10 * time.Second}
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
