package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cairnlog/cairn/infra/backoff"
)

// ConsumerConfig configures a Consumer. Zero fields take the defaults
// written on each.
type ConsumerConfig struct {
	// From is where to start: Earliest (the default), Latest, AtID,
	// AtTimeTick, or a Position saved from an earlier Consumer to resume
	// right after the last message it delivered.
	From string
	// VChannels keeps only these vchannels; default all.
	VChannels []string
	// Types keeps only these message types; default data, insert, delete
	// and broadcast.
	Types []string
	// Wait is how long each read long-polls at the tail. Default 10 s (the
	// server caps it, at 20 s by default). Negative: reads answer at once;
	// Poll then returns nothing at the tail, and Next pauses between empty
	// reads (100 ms doubling to 1 s, jittered: idleBackoff).
	Wait time.Duration
	// Max bounds the messages of one read; default the server's (100).
	Max int
}

// Consumer reads one pchannel (or one vchannel: Client.VChannelConsumer) in
// order from a position, long-polling at the tail, and keeps a resumable
// position: Position, persisted and given back
// as ConsumerConfig.From, resumes right after the last message delivered.
// It never delivers a message twice (nor a message before one it
// delivered). A failed read changes nothing: call again to retry from the
// same place.
//
// Next and Poll must not be called concurrently; Position may be called
// from any goroutine.
type Consumer struct {
	c        *Client
	pchannel string // or the vchannel, with byVChannel
	cfg      ConsumerConfig
	// byVChannel reads GET /v1/vchannels/{v}/messages: a restored history
	// first (Restored deliveries), then the vchannel's own messages.
	byVChannel bool

	buf     []Delivery     // read, not yet delivered
	bufNext string         // the read's next: the position once buf is drained
	idle    backoff.Pauses // between empty reads, with Wait < 0

	mu   sync.Mutex
	pos  string   // right after the last message delivered
	last Delivery // the last message delivered
	any  bool     // a message was delivered
}

// idleBackoff is the pause between empty reads of a Consumer whose reads
// do not long-poll.
var idleBackoff = backoff.Policy{Min: 100 * time.Millisecond, Max: time.Second}

// Consumer returns a consumer of pchannel. It sends nothing until the first
// Next or Poll.
func (c *Client) Consumer(pchannel string, cfg ConsumerConfig) (*Consumer, error) {
	if _, err := pchannelPath(pchannel, ""); err != nil {
		return nil, err
	}
	if cfg.Max < 0 {
		return nil, fmt.Errorf("client: consumer: %w: negative max", ErrInvalid)
	}
	if cfg.From == "" {
		cfg.From = Earliest
	}
	if cfg.Wait == 0 {
		cfg.Wait = 10 * time.Second
	}
	return &Consumer{c: c, pchannel: pchannel, cfg: cfg, pos: cfg.From, idle: idleBackoff.Start()}, nil
}

// VChannelConsumer returns a consumer of vchannel: the server finds its
// pchannel and keeps the reads to it (cfg.VChannels must be empty). A
// restored vchannel delivers its restored history first (Delivery.Restored,
// whose IDs are the snapshot source's), then its own messages. It sends
// nothing until the first Next or Poll.
func (c *Client) VChannelConsumer(vchannel string, cfg ConsumerConfig) (*Consumer, error) {
	if _, err := vchannelPath(vchannel, ""); err != nil {
		return nil, err
	}
	if len(cfg.VChannels) > 0 {
		return nil, fmt.Errorf("client: consumer: %w: a vchannel consumer takes no VChannels filter", ErrInvalid)
	}
	co, err := c.Consumer("-", cfg)
	if err != nil {
		return nil, err
	}
	co.pchannel, co.byVChannel = vchannel, true
	return co, nil
}

// Position is the position right after the last message delivered (From,
// until one is; a Latest start becomes a concrete ID after the first read).
// Give it as ConsumerConfig.From to resume.
func (co *Consumer) Position() string {
	co.mu.Lock()
	defer co.mu.Unlock()
	return co.pos
}

// Next returns the next message, reading (and long-polling) as long as it
// takes; it returns early only with an error: ctx's, or a read's that ran
// out of retries.
func (co *Consumer) Next(ctx context.Context) (Delivery, error) {
	for len(co.buf) == 0 {
		if err := co.fill(ctx); err != nil {
			return Delivery{}, err
		}
		if len(co.buf) == 0 && co.cfg.Wait < 0 {
			if err := co.c.sleep(ctx, co.idle.Next()); err != nil {
				return Delivery{}, err
			}
		}
	}
	co.idle.Reset()
	d := co.buf[0]
	co.buf = co.buf[1:]
	co.delivered(d)
	return d, nil
}

// Poll returns up to max messages (0: no limit) already read but not
// delivered, or else reads once (long-polling up to Wait) and returns up to
// max of what came: possibly nothing. Messages beyond max stay for the next
// call, and Position is right after the last message returned.
func (co *Consumer) Poll(ctx context.Context, max int) ([]Delivery, error) {
	if len(co.buf) == 0 {
		if err := co.fill(ctx); err != nil {
			return nil, err
		}
	}
	n := len(co.buf)
	if max > 0 && max < n {
		n = max
	}
	out := co.buf[:n:n]
	co.buf = co.buf[n:]
	for _, d := range out {
		co.delivered(d)
	}
	return out, nil
}

// fill reads once into the empty buffer, from the position.
func (co *Consumer) fill(ctx context.Context) error {
	wait := max(co.cfg.Wait, 0)
	read := co.c.Read
	if co.byVChannel {
		read = co.c.ReadVChannel
	}
	res, err := read(ctx, co.pchannel, ReadOptions{
		From: co.Position(), VChannels: co.cfg.VChannels, Types: co.cfg.Types, Max: co.cfg.Max, Wait: wait,
	})
	if err != nil {
		return fmt.Errorf("client: consume %s: %w", co.pchannel, err)
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	for _, d := range res.Messages {
		if co.any && !deliveredBefore(co.last, d) {
			continue // delivered already: never twice
		}
		co.buf = append(co.buf, d)
	}
	co.bufNext = res.Next
	if len(co.buf) == 0 && res.Next != "" {
		co.pos = res.Next
	}
	return nil
}

// delivered advances the position past d.
func (co *Consumer) delivered(d Delivery) {
	co.mu.Lock()
	defer co.mu.Unlock()
	co.last, co.any = d, true
	co.pos = d.after()
	if len(co.buf) == 0 && co.bufNext != "" {
		co.pos = co.bufNext
	}
}

// deliveredBefore reports whether last comes before d in a consumer's
// order: a restored history (its own, the snapshot source's, IDs) comes
// before a vchannel's own messages.
func deliveredBefore(last, d Delivery) bool {
	if last.Restored != d.Restored {
		return last.Restored
	}
	return last.ID.Less(d.ID)
}
