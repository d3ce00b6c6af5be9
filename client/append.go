package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"github.com/cairnlog/cairn/functions/api/wire"
)

// AppendOptions are the options of one Client.Append.
type AppendOptions struct {
	// ExpectedOffset, if set, makes the append conditional: the batch
	// lands at exactly this offset, or nothing is written and the error
	// matches ErrOffsetMismatch (its *Error carries the tail in
	// NextOffset). A conditional append is never retried after a failure
	// that may have landed: that retry would meet a mismatch if the first
	// try landed; the error then matches ErrOutcomeUnknown.
	ExpectedOffset *uint64
	// AfterSeq, if set, orders the append behind an earlier one of the
	// same producer: every message must carry a Key of one producer and
	// epoch, and the batch is written only if the message keyed (producer,
	// epoch, *AfterSeq) is acked or queued ahead of it on the server, else
	// the error matches ErrOutOfSequence and nothing was written. Retried
	// like an append without it. Not with ExpectedOffset.
	AfterSeq *uint64
}

// Append appends msgs to pchannel as one batch, in order, and returns one
// ack per message. It is a single request: for many messages, pipelining
// and keys chosen for you, use a Producer.
//
// Retries: when every message carries a Key and there is no expected
// offset, every retryable failure (busy answers, timeouts, lost replies,
// 503 outcome_unknown) is retried with the same keys, so the batch lands
// once and the acks are its first copy's. Otherwise only failures that
// prove nothing was written (a refused connection, 503 lease_held) are
// retried, and the others fail with an error matching ErrOutcomeUnknown.
func (c *Client) Append(ctx context.Context, pchannel string, msgs []Message, opts AppendOptions) ([]Ack, error) {
	path, err := pchannelPath(pchannel, "/append")
	if err != nil {
		return nil, err
	}
	return c.appendTo(ctx, path, pchannel, msgs, opts)
}

// AppendVChannel appends msgs to vchannel, as Append appends to a
// pchannel: the server finds the vchannel's pchannel. A message may leave
// VChannel empty; one that names another vchannel is refused (ErrInvalid).
// ErrNotFound for an unknown vchannel, ErrConflict for a dropped one.
func (c *Client) AppendVChannel(ctx context.Context, vchannel string, msgs []Message, opts AppendOptions) ([]Ack, error) {
	path, err := vchannelPath(vchannel, "/append")
	if err != nil {
		return nil, err
	}
	return c.appendTo(ctx, path, vchannel, msgs, opts)
}

func (c *Client) appendTo(ctx context.Context, path, target string, msgs []Message, opts AppendOptions) ([]Ack, error) {
	pchannel := target // in messages
	if len(msgs) == 0 {
		return nil, fmt.Errorf("client: append %s: %w: no messages", pchannel, ErrInvalid)
	}
	keyed := true
	for _, m := range msgs {
		keyed = keyed && m.Key != nil && m.Key.Producer != ""
	}
	query := url.Values{}
	if opts.AfterSeq != nil {
		if opts.ExpectedOffset != nil {
			return nil, fmt.Errorf("client: append %s: %w: AfterSeq and ExpectedOffset exclude each other", pchannel, ErrInvalid)
		}
		query.Set("after_seq", strconv.FormatUint(*opts.AfterSeq, 10))
	}
	// The binary body when the messages fit it (the expected offset then
	// goes in the query), else JSON.
	buf := c.bodies.get()
	body, isBinary := encodeBatch((*buf)[:0], msgs)
	contentType := contentTypeBatch
	var shared *sharedBody
	if isBinary {
		*buf = body
		shared = newSharedBody(&c.bodies, buf)
		defer shared.release()
		if opts.ExpectedOffset != nil {
			query.Set("expected_offset", strconv.FormatUint(*opts.ExpectedOffset, 10))
		}
	} else {
		c.bodies.put(buf)
		req := wire.AppendRequest{Messages: make([]wire.MessageIn, len(msgs)), ExpectedOffset: opts.ExpectedOffset}
		for i, m := range msgs {
			req.Messages[i] = wire.MessageIn{VChannel: m.VChannel, Type: m.Type, Payload: m.Payload, Properties: m.Properties, Key: m.Key}
		}
		var err error
		if body, err = json.Marshal(req); err != nil {
			return nil, fmt.Errorf("client: append %s: %w: %w", pchannel, ErrInvalid, err)
		}
		contentType = ""
	}
	var resp wire.AppendResponse
	err := c.do(ctx, request{method: "POST", path: path, query: query, body: body, shared: shared, contentType: contentType,
		prefer: wire.PreferAckRuns, write: true, idempotent: keyed && opts.ExpectedOffset == nil}, &resp)
	if err != nil {
		return nil, err
	}
	if resp.AckRuns != nil { // asked for; a server without them sends Acks
		if resp.Acks, err = wire.ExpandAckRuns(resp.AckRuns, len(msgs)); err != nil {
			return nil, fmt.Errorf("client: append %s: %w: %w", pchannel, ErrInternal, err)
		}
	}
	if len(resp.Acks) != len(msgs) {
		return nil, fmt.Errorf("client: append %s: %w: %d acks for %d messages", pchannel, ErrInternal, len(resp.Acks), len(msgs))
	}
	acks := make([]Ack, len(msgs))
	for i, a := range resp.Acks {
		acks[i] = Ack{ID: MessageID{Offset: a.Offset, Index: a.Index}, TimeTick: a.TimeTick, Term: resp.Term, Duplicate: a.Duplicate}
	}
	return acks, nil
}
