package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
)

// Txn is an open transaction on one vchannel: its messages are buffered by
// the server's writer of the vchannel's pchannel and written at Commit as
// one batch, so readers see all of them or none. The transaction lives in
// the server process that began it: a failover or restart aborts it
// (later calls fail with ErrNotFound), and it is rolled back when no call
// touches it for its keepalive (ErrConflict). A Txn is safe for concurrent
// use, but its messages land in the order the server receives them.
type Txn struct {
	c        *Client
	handle   string
	PChannel string
	VChannel string
	Term     uint64
}

// Handle is the server's handle of the transaction
// ("PCHANNEL:VCHANNEL:ID").
func (t *Txn) Handle() string { return t.handle }

// BeginTxn opens a transaction on vchannel that lives while calls touch it
// at least every keepalive (0: the server's default, 1 minute; at most 10
// minutes). A begin is retried only when it surely did not reach the
// server; one lost after reaching it leaves a transaction that expires.
func (c *Client) BeginTxn(ctx context.Context, vchannel string, keepalive time.Duration) (*Txn, error) {
	path, err := vchannelPath(vchannel, "/txns")
	if err != nil {
		return nil, err
	}
	var req wire.TxnBeginRequest
	if keepalive > 0 {
		req.Keepalive = keepalive.String()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var resp wire.TxnOut
	if err := c.do(ctx, request{method: "POST", path: path, body: body}, &resp); err != nil {
		return nil, err
	}
	return &Txn{c: c, handle: resp.Txn, PChannel: resp.PChannel, VChannel: resp.VChannel, Term: resp.Term}, nil
}

func (t *Txn) path(suffix string) string { return "/v1/txns/" + url.PathEscape(t.handle) + suffix }

// Append adds msgs to the transaction (their VChannel may be empty; Key
// must be nil: the commit carries the transaction's key). Nothing is
// written until Commit. An append is retried only when it surely did not
// reach the server (a retry after it did would add the messages twice);
// otherwise it fails with ErrOutcomeUnknown, and the transaction is best
// rolled back.
func (t *Txn) Append(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return fmt.Errorf("client: txn %s: %w: no messages", t.handle, ErrInvalid)
	}
	req := wire.AppendRequest{Messages: make([]wire.MessageIn, len(msgs))}
	for i, m := range msgs {
		if m.Key != nil {
			return fmt.Errorf("client: txn %s: %w: message %d has a key", t.handle, ErrInvalid, i)
		}
		req.Messages[i] = wire.MessageIn{VChannel: m.VChannel, Type: m.Type, Payload: m.Payload, Properties: m.Properties}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return t.c.do(ctx, request{method: "POST", path: t.path("/append"), body: body, write: true}, nil)
}

// Commit writes the transaction as one batch and returns one ack per
// message, then the commit's own. It is retried freely: a commit that
// landed answers again with only the commit's ack, marked Duplicate (also
// after a failover); one that did not fails with ErrNotFound.
func (t *Txn) Commit(ctx context.Context) ([]Ack, error) {
	var resp wire.TxnCommitResponse
	if err := t.c.do(ctx, request{method: "POST", path: t.path("/commit"), body: []byte("{}"), write: true, idempotent: true}, &resp); err != nil {
		return nil, err
	}
	acks := make([]Ack, len(resp.Acks))
	for i, a := range resp.Acks {
		acks[i] = Ack{ID: MessageID{Offset: a.Offset, Index: a.Index}, TimeTick: a.TimeTick, Term: resp.Term, Duplicate: a.Duplicate}
	}
	return acks, nil
}

// Rollback drops the transaction; nothing of it was written. ErrNotFound
// if it is not open (committed, expired, aborted, or rolled back by an
// earlier try of this call).
func (t *Txn) Rollback(ctx context.Context) error {
	return t.c.do(ctx, request{method: "POST", path: t.path("/rollback"), body: []byte("{}"), idempotent: true}, nil)
}
