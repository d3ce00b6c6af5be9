package client

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
)

// ReadOptions are the options of one Client.Read.
type ReadOptions struct {
	From      string   // a position (see Earliest); default Earliest
	VChannels []string // keep only these vchannels; default all
	// Types keeps only these message types; default data, insert, delete
	// and broadcast.
	Types []string
	// Max bounds the messages returned; default the server's (100), and
	// the server caps it (10,000).
	Max int
	// Wait is how long the server long-polls when nothing is there yet;
	// the server caps it (20 s by default). Default 0: answer at once.
	Wait time.Duration
	// IgnorePause reads through the server's scanner startup delay
	// (CAIRN_SCANNER_STARTUP_DELAY) instead of waiting for it to end.
	IgnorePause bool
}

// ReadResult is the answer of one read.
type ReadResult struct {
	Messages []Delivery
	// Next is the position to read from next: right after the last
	// message returned, or From (concrete, when From was Latest) if none
	// was.
	Next string
	// Paused: the server's startup delay held the read back for its whole
	// wait; nothing was read. Read again from Next.
	Paused bool
}

// Read reads pchannel once: what is there from opts.From (up to Max
// messages and about 4 MiB of payload), or, if nothing is, the first
// messages to arrive within Wait. An empty result is not an error. A read
// is retried on busy answers and transport failures.
func (c *Client) Read(ctx context.Context, pchannel string, opts ReadOptions) (ReadResult, error) {
	path, err := pchannelPath(pchannel, "/messages")
	if err != nil {
		return ReadResult{}, err
	}
	return c.read(ctx, path, opts)
}

// ReadVChannel reads vchannel once, as Read reads a pchannel: the server
// finds the vchannel's pchannel and keeps the read to the vchannel
// (opts.VChannels must be empty). From Earliest, a restored vchannel
// delivers its restored history first (Delivery.Restored, positions
// AtRestored), then its own messages.
func (c *Client) ReadVChannel(ctx context.Context, vchannel string, opts ReadOptions) (ReadResult, error) {
	path, err := vchannelPath(vchannel, "/messages")
	if err != nil {
		return ReadResult{}, err
	}
	if len(opts.VChannels) > 0 {
		return ReadResult{}, fmt.Errorf("client: read %s: %w: a read by vchannel takes no VChannels filter", vchannel, ErrInvalid)
	}
	return c.read(ctx, path, opts)
}

func (c *Client) read(ctx context.Context, path string, opts ReadOptions) (ReadResult, error) {
	q := url.Values{}
	if opts.From != "" {
		q.Set("from", opts.From)
	}
	for _, v := range opts.VChannels {
		q.Add("vchannel", v)
	}
	for _, t := range opts.Types {
		q.Add("type", t)
	}
	if opts.Max > 0 {
		q.Set("max", strconv.Itoa(opts.Max))
	}
	if opts.Wait > 0 {
		q.Set("wait", opts.Wait.String())
	}
	if opts.IgnorePause {
		q.Set("ignore_pause", "true")
	}
	var resp wire.ReadResponse
	if err := c.do(ctx, request{method: "GET", path: path, query: q, wait: opts.Wait, idempotent: true}, &resp); err != nil {
		return ReadResult{}, err
	}
	out := ReadResult{Messages: make([]Delivery, len(resp.Messages)), Next: resp.Next, Paused: resp.Paused}
	for i, m := range resp.Messages {
		out.Messages[i] = Delivery{
			ID: MessageID{Offset: m.Offset, Index: m.Index}, Term: m.Term, TimeTick: m.TimeTick,
			Type: m.Type, VChannel: m.VChannel, Payload: m.Payload, Properties: m.Properties, Key: m.Key,
			BroadcastID: m.BroadcastID, Restored: m.Restored,
		}
	}
	return out, nil
}
