package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/cairnlog/cairn/infra/backoff"
	"github.com/google/uuid"
)

// ProducerConfig configures a Producer. Zero fields take the defaults
// written on each.
type ProducerConfig struct {
	// Name is the producer part of every idempotency key. Default
	// "go-<hostname>-<pid>".
	Name string
	// VChannel is the vchannel of messages that name none. Default none:
	// every message must name its vchannel.
	VChannel string
	// Window bounds the append requests in flight. Default 1. At any
	// window the log keeps the order of Send: a batch sent while the one
	// before it is unresolved names that batch's last key
	// (AppendOptions.AfterSeq), so the server writes it only behind that
	// batch; when the server answers out of sequence (nothing written: the
	// earlier batch had not arrived yet, or is being retried) the Producer
	// sends it again after a pause of up to 20 ms, or without the
	// condition once the earlier batch is acked; if the earlier batch
	// failed, it fails unsent. Acks are delivered in Send order, and every
	// message lands once.
	Window int
	// MaxBatchMessages and MaxBatchBytes bound one append request. Bytes
	// are counted as the server counts them (payload, vchannel, producer
	// name and properties, plus 32 per message); a message alone over
	// MaxBatchBytes is refused by SendAsync with ErrTooLarge. Defaults 1,000
	// messages and 512 KiB (the server takes up to 10,000 and 1 MiB).
	MaxBatchMessages int
	MaxBatchBytes    int
	// Linger is how long a batch that is not full waits for more messages
	// once a request slot is free. Default 0: messages queued while the
	// window is full are batched anyway, so Linger only matters when the
	// window is rarely full.
	Linger time.Duration
	// MaxPending bounds the messages sent but not yet acked; SendAsync
	// blocks while there are this many. Default 10,000.
	MaxPending int
}

func (c ProducerConfig) withDefaults() ProducerConfig {
	if c.Name == "" {
		h, _ := os.Hostname()
		c.Name = "go-" + h + "-" + strconv.Itoa(os.Getpid())
	}
	if c.Window == 0 {
		c.Window = 1
	}
	if c.MaxBatchMessages == 0 {
		c.MaxBatchMessages = 1000
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 512 << 10
	}
	if c.MaxPending == 0 {
		c.MaxPending = 10_000
	}
	return c
}

// Validate reports a configuration a Producer cannot run with, after
// defaults are applied to zero fields.
func (c ProducerConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Window < 1 || c.MaxBatchMessages < 1 || c.MaxBatchBytes < 1 || c.MaxPending < 1:
		return fmt.Errorf("client: producer: %w: window, batch limits and max pending must be positive", ErrInvalid)
	case c.Linger < 0:
		return fmt.Errorf("client: producer: %w: negative linger", ErrInvalid)
	}
	return nil
}

// Producer appends messages to one pchannel with pipelined, batched,
// idempotent requests. Build it with Client.Producer; Close it to flush.
//
// Keys: every message gets the key (Name, Epoch, Seq), Epoch chosen when
// the Producer is built (a UUIDv7's time and counter bits: strictly
// increasing within the process, unique across processes in practice) and
// Seq counting from 0. A failed request is retried with the same keys, so a
// message lands once even when a reply is lost.
//
// Acks come back in Send order: a Future is done only after every earlier
// one is. Failures: a batch that fails for good (a 4xx such as ErrTooLarge,
// ErrInvalid or ErrFenced, or retries run out) fails each of its messages
// with that error, and the Producer stops there, so the log never has a gap
// after a failure: messages not yet sent fail with an error matching
// ErrStopped (and the cause); a batch already in flight behind it lands only
// if it was queued behind the failed one before the failure (as the server
// checks, see Window), and fails unsent otherwise. Build a new Producer to
// go on.
//
// A Producer is safe for concurrent use; messages sent concurrently are
// ordered as their SendAsync calls take the Producer's lock.
type Producer struct {
	c        *Client
	pchannel string // or the vchannel, with byVChannel
	cfg      ProducerConfig
	epoch    uint64
	// byVChannel appends through POST /v1/vchannels/{v}/append.
	byVChannel bool

	slots  chan struct{} // a token per pending message (MaxPending)
	window chan struct{} // a token per request in flight (Window)
	wake   chan struct{} // cap 1: the queue grew, or the producer is closing
	ctx    context.Context
	cancel context.CancelFunc // abandons the requests in flight
	done   chan struct{}      // closed when the dispatcher returns
	sends  sync.WaitGroup     // requests in flight

	mu       sync.Mutex
	seq      uint64
	queue    []*Future // sent, not yet in a batch
	order    []*batch  // batches not yet resolved, in Send order
	sent     *batch    // the latest batch taken for sending
	last     *Future   // the latest message sent
	closing  bool
	flushing int   // Flush calls waiting: no lingering
	err      error // what the producer stopped at
}

// batch is one append request, or a run of messages failed without one.
type batch struct {
	futures []*Future
	// prev is the batch sent before this one, until this one finishes
	// (then nil, so that finished batches are not kept).
	prev     *batch
	done     chan struct{} // closed by finish
	finished bool
	acks     []Ack
	err      error
}

// Future is the outcome of one SendAsync: done when the message is acked
// or failed, and only after every message sent before it is.
type Future struct {
	msg  Message
	key  Key // msg.Key points here: one allocation per message, not two
	size int
	at   time.Time // when it was sent, for Linger (zero without)

	done chan struct{}
	ack  Ack
	err  error
}

// Done is closed when the outcome is known.
func (f *Future) Done() <-chan struct{} { return f.done }

// Key is the idempotency key of the message.
func (f *Future) Key() Key { return *f.msg.Key }

// Wait waits for the outcome. If ctx ends first it returns ctx's error, and
// the message may still land.
func (f *Future) Wait(ctx context.Context) (Ack, error) {
	select {
	case <-f.done:
		return f.ack, f.err
	case <-ctx.Done():
		return Ack{}, context.Cause(ctx)
	}
}

// Producer returns a producer of pchannel. It sends nothing until the first
// message.
func (c *Client) Producer(pchannel string, cfg ProducerConfig) (*Producer, error) {
	if _, err := pchannelPath(pchannel, ""); err != nil {
		return nil, err
	}
	return c.newProducer(pchannel, false, cfg)
}

func (c *Client) newProducer(target string, byVChannel bool, cfg ProducerConfig) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	u, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("client: producer epoch: %w", err)
	}
	hi := binary.BigEndian.Uint64(u[:8]) // unix_ms(48) | version(4) | counter(12)
	p := &Producer{
		c: c, pchannel: target, byVChannel: byVChannel, cfg: cfg, epoch: hi>>16<<12 | hi&0xfff,
		slots: make(chan struct{}, cfg.MaxPending), window: make(chan struct{}, cfg.Window),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	go p.dispatch()
	return p, nil
}

// VChannelProducer returns a producer of vchannel: the server finds the
// vchannel's pchannel (as Client.AppendVChannel). Messages may leave
// VChannel empty; cfg.VChannel must be empty or vchannel. It sends nothing
// until the first message.
func (c *Client) VChannelProducer(vchannel string, cfg ProducerConfig) (*Producer, error) {
	if _, err := vchannelPath(vchannel, ""); err != nil {
		return nil, err
	}
	if cfg.VChannel != "" && cfg.VChannel != vchannel {
		return nil, fmt.Errorf("client: producer of %s: %w: default vchannel %s", vchannel, ErrInvalid, cfg.VChannel)
	}
	cfg.VChannel = vchannel
	return c.newProducer(vchannel, true, cfg)
}

// Name and Epoch are the producer and epoch parts of this Producer's keys.
func (p *Producer) Name() string  { return p.cfg.Name }
func (p *Producer) Epoch() uint64 { return p.epoch }

// Err is the error the Producer stopped at, or nil.
func (p *Producer) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Send sends m and waits for its ack (see SendAsync and Future.Wait).
func (p *Producer) Send(ctx context.Context, m Message) (Ack, error) {
	f, err := p.SendAsync(ctx, m)
	if err != nil {
		return Ack{}, err
	}
	return f.Wait(ctx)
}

// SendAsync queues m and returns its Future. ctx bounds only the wait for
// room (MaxPending); the message is sent on the Producer's own time, until
// Close. It fails at once with ErrInvalid (m carries a Key, or names no
// vchannel), ErrTooLarge, ErrClosed or ErrStopped.
func (p *Producer) SendAsync(ctx context.Context, m Message) (*Future, error) {
	if m.Key != nil {
		return nil, fmt.Errorf("client: producer %s: %w: the producer sets the keys", p.pchannel, ErrInvalid)
	}
	if m.VChannel == "" {
		m.VChannel = p.cfg.VChannel
	}
	if m.VChannel == "" {
		return nil, fmt.Errorf("client: producer %s: %w: message names no vchannel", p.pchannel, ErrInvalid)
	}
	if p.byVChannel && m.VChannel != p.pchannel {
		return nil, fmt.Errorf("client: producer of %s: %w: message for vchannel %s", p.pchannel, ErrInvalid, m.VChannel)
	}
	size := len(m.Payload) + len(m.VChannel) + len(p.cfg.Name) + 32
	for k, v := range m.Properties {
		size += len(k) + len(v) + 2
	}
	if size > p.cfg.MaxBatchBytes {
		return nil, fmt.Errorf("client: producer %s: %w: message of %d bytes, batches of at most %d", p.pchannel, ErrTooLarge, size, p.cfg.MaxBatchBytes)
	}
	if err := p.refusal(); err != nil {
		return nil, err
	}
	select {
	case p.slots <- struct{}{}: // no select over ctx while there is room
	default:
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	var at time.Time
	if p.cfg.Linger > 0 {
		at = time.Now()
	}
	p.mu.Lock()
	if err := p.refusalLocked(); err != nil {
		p.mu.Unlock()
		<-p.slots
		return nil, err
	}
	f := &Future{msg: m, key: Key{Producer: p.cfg.Name, Epoch: p.epoch, Seq: p.seq}, size: size, at: at, done: make(chan struct{})}
	f.msg.Key = &f.key
	p.seq++
	p.queue = append(p.queue, f)
	p.last = f
	p.mu.Unlock()
	p.poke()
	return f, nil
}

func (p *Producer) refusal() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refusalLocked()
}

func (p *Producer) refusalLocked() error {
	switch {
	case p.closing:
		return fmt.Errorf("client: producer %s: %w", p.pchannel, ErrClosed)
	case p.err != nil:
		return fmt.Errorf("client: producer %s: %w: %w", p.pchannel, ErrStopped, p.err)
	}
	return nil
}

// poke wakes the dispatcher.
func (p *Producer) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Flush waits until every message sent before it is acked or failed. It
// returns nil if the Producer has not stopped, else the error it stopped
// at; ctx's error if ctx ends first.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	f := p.last
	p.flushing++
	p.mu.Unlock()
	p.poke()
	defer func() {
		p.mu.Lock()
		p.flushing--
		p.mu.Unlock()
	}()
	if f != nil {
		if _, err := f.Wait(ctx); err != nil && ctx.Err() != nil {
			return err
		}
	}
	return p.Err()
}

// Close refuses new messages (ErrClosed), flushes, and stops. If ctx ends
// before the flush does, it abandons the rest: queued messages fail with
// ErrClosed, requests in flight are cancelled and their messages fail with
// ErrOutcomeUnknown (they may have landed). It returns what Flush returns.
// Calling it again waits again.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	p.poke()
	err := p.Flush(ctx)
	if ctx.Err() != nil {
		p.mu.Lock()
		p.failQueueLocked(fmt.Errorf("client: producer %s: %w before it was sent", p.pchannel, ErrClosed))
		p.mu.Unlock()
	}
	p.cancel()
	<-p.done
	p.sends.Wait()
	return err
}

// dispatch sends batches while there is room in the window, until the
// producer closes or stops.
func (p *Producer) dispatch() {
	defer close(p.done)
	for {
		select {
		case p.window <- struct{}{}:
		case <-p.ctx.Done():
			return
		}
		b := p.nextBatch()
		if b == nil {
			<-p.window
			return
		}
		p.sends.Add(1)
		go func() {
			defer func() { <-p.window; p.sends.Done() }()
			acks, err := p.send(b)
			p.finish(b, acks, err)
		}()
	}
}

// send sends batch b in order behind the batch before it (see Window).
func (p *Producer) send(b *batch) ([]Ack, error) {
	msgs := make([]Message, len(b.futures))
	for i, f := range b.futures {
		msgs[i] = f.msg
	}
	appendTo := p.c.Append
	if p.byVChannel {
		appendTo = p.c.AppendVChannel
	}
	prev := b.prev
	var opts AppendOptions
	if prev != nil {
		p.mu.Lock()
		finished, prevErr := prev.finished, prev.err
		p.mu.Unlock()
		switch {
		case finished && prevErr != nil:
			return nil, p.unsent(prevErr)
		case !finished:
			after := msgs[0].Key.Seq - 1
			opts.AfterSeq = &after
		}
	}
	pauses := outOfSequenceBackoff.Start()
	for {
		acks, err := appendTo(p.ctx, p.pchannel, msgs, opts)
		if opts.AfterSeq == nil || !errors.Is(err, ErrOutOfSequence) {
			return acks, err
		}
		// Nothing was written: the batch before has not reached the
		// server's writer yet (it is on its way, or being retried). Try
		// again shortly, or, once it is resolved, without the condition.
		t := time.NewTimer(pauses.Next())
		select {
		case <-prev.done:
			t.Stop()
			if prev.err != nil {
				return nil, p.unsent(prev.err)
			}
			opts.AfterSeq = nil
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("client: producer %s: %w before it was sent", p.pchannel, ErrClosed)
		}
	}
}

// outOfSequenceBackoff is the pause before a batch refused out of sequence
// is sent again while the batch before it is unresolved: 1 ms doubling up
// to 20 ms, jittered.
var outOfSequenceBackoff = backoff.Policy{Min: time.Millisecond, Max: 20 * time.Millisecond}

// unsent is the error of a batch not sent because an earlier one failed.
func (p *Producer) unsent(cause error) error {
	return fmt.Errorf("client: producer %s: %w: %w", p.pchannel, ErrStopped, cause)
}

// nextBatch waits for queued messages and takes the next batch, or returns
// nil when there will be none: closed and drained, stopped, or abandoned.
func (p *Producer) nextBatch() *batch {
	for {
		p.mu.Lock()
		if p.err != nil || p.ctx.Err() != nil || (p.closing && len(p.queue) == 0) {
			p.mu.Unlock()
			return nil
		}
		var wait time.Duration
		if len(p.queue) > 0 {
			n, size := 0, 0
			for n < len(p.queue) && n < p.cfg.MaxBatchMessages && size+p.queue[n].size <= p.cfg.MaxBatchBytes {
				size += p.queue[n].size
				n++
			}
			full := n < len(p.queue) || n == p.cfg.MaxBatchMessages
			wait = p.cfg.Linger - time.Since(p.queue[0].at)
			if full || p.closing || p.flushing > 0 || wait <= 0 {
				b := &batch{futures: p.queue[:n:n], prev: p.sent, done: make(chan struct{})}
				p.sent = b
				p.queue = p.queue[n:]
				p.order = append(p.order, b)
				p.mu.Unlock()
				return b
			}
		}
		p.mu.Unlock()
		var t *time.Timer
		var timer <-chan time.Time
		if wait > 0 {
			t = time.NewTimer(wait)
			timer = t.C
		}
		select {
		case <-p.wake:
		case <-timer:
		case <-p.ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
	}
}

// finish records a batch's outcome and resolves what can be, in order.
func (p *Producer) finish(b *batch, acks []Ack, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b.finished, b.acks, b.err, b.prev = true, acks, err, nil
	close(b.done)
	if err != nil && p.err == nil {
		p.err = err
		p.c.log.Warn("cairn: producer stopped", "pchannel", p.pchannel, "producer", p.cfg.Name, "epoch", p.epoch, "err", err)
		p.failQueueLocked(fmt.Errorf("client: producer %s: %w: %w", p.pchannel, ErrStopped, err))
		p.poke()
	}
	p.resolveLocked()
}

// failQueueLocked fails every queued message with err, in order after the
// batches in flight.
func (p *Producer) failQueueLocked(err error) {
	if len(p.queue) > 0 {
		p.order = append(p.order, &batch{futures: p.queue, finished: true, err: err})
		p.queue = nil
	}
	p.resolveLocked()
}

// resolveLocked completes the futures of the finished batches at the head
// of the order.
func (p *Producer) resolveLocked() {
	for len(p.order) > 0 && p.order[0].finished {
		b := p.order[0]
		p.order[0] = nil
		p.order = p.order[1:]
		for i, f := range b.futures {
			if b.err != nil {
				f.err = b.err
			} else {
				f.ack = b.acks[i]
			}
			close(f.done)
			<-p.slots
		}
	}
}
