package objstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cairnlog/cairn/infra/backoff"
)

// Op names a Store operation, for per-operation fault rates and counters.
type Op uint8

const (
	OpGet Op = iota
	OpGetRange
	OpHead
	OpPutIfAbsent
	OpPutIfMatch
	OpPut
	OpList
	OpDelete
	OpGetIfNoneMatch
	numOps
)

var opNames = [numOps]string{"get", "get-range", "head", "put-if-absent", "put-if-match", "put", "list", "delete", "get-if-none-match"}

func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", o)
}

// Ops returns every operation, in declaration order.
func Ops() []Op {
	ops := make([]Op, numOps)
	for i := range ops {
		ops[i] = Op(i)
	}
	return ops
}

// isWrite reports whether o changes the store (and so can have its reply
// lost or its effect delayed).
func (o Op) isWrite() bool {
	return o == OpPutIfAbsent || o == OpPutIfMatch || o == OpPut || o == OpDelete
}

// FaultConfig configures a Fault. The zero value injects nothing.
type FaultConfig struct {
	// Seed makes the faults reproducible: two Faults with the same Seed
	// that receive the same sequence of calls inject the same faults.
	Seed uint64
	// ErrorRate is the probability, in [0, 1], that a call fails with an
	// error wrapping ErrTransient without reaching the inner store.
	// ErrorRates overrides it per operation.
	ErrorRate  float64
	ErrorRates map[Op]float64
	// Latency delays every call by Latency plus a uniformly random duration
	// in [0, Jitter). The wait honours the caller's context.
	Latency, Jitter time.Duration
	// LostReplyRate is the probability that a write (PutIfAbsent,
	// PutIfMatch, Put, Delete) is applied to the inner store and the caller
	// then gets an error wrapping ErrTransient and context.DeadlineExceeded,
	// as when a reply is lost and the client times out.
	LostReplyRate float64
	// DelayedApplyRate is the probability that a write is held back: the
	// caller gets the same timeout error at once, and the write is applied
	// to the inner store DelayedApply later (default 50ms), as when a PUT
	// lands after its client gave up. Drain waits for held writes.
	DelayedApplyRate float64
	DelayedApply     time.Duration
}

// Validate reports a rate outside [0, 1] or a negative duration.
func (c FaultConfig) Validate() error {
	rates := map[string]float64{"error rate": c.ErrorRate, "lost reply rate": c.LostReplyRate, "delayed apply rate": c.DelayedApplyRate}
	for op, r := range c.ErrorRates {
		rates["error rate of "+op.String()] = r
	}
	for name, r := range rates {
		if r < 0 || r > 1 {
			return fmt.Errorf("fault config: %s %v not in [0, 1]", name, r)
		}
	}
	if c.LostReplyRate+c.DelayedApplyRate > 1 {
		return fmt.Errorf("fault config: lost reply rate + delayed apply rate = %v exceeds 1", c.LostReplyRate+c.DelayedApplyRate)
	}
	if c.Latency < 0 || c.Jitter < 0 || c.DelayedApply < 0 {
		return fmt.Errorf("fault config: negative duration")
	}
	return nil
}

// FaultStats counts the calls a Fault saw and the faults it injected.
type FaultStats struct {
	Calls    map[Op]int64 // calls per operation, faulty or not
	Injected map[Op]int64 // injected ErrTransient failures per operation
	// LostReplies counts writes applied whose caller got a timeout.
	LostReplies int64
	// DelayedWrites counts writes held back; DelayedApplied counts those
	// whose late apply the inner store accepted, DelayedRejected those it
	// refused (say, a PutIfAbsent that found the key taken meanwhile).
	DelayedWrites, DelayedApplied, DelayedRejected int64
}

// Fault is a Store that injects failures into the calls it forwards to an
// inner Store: transient errors, latency, lost replies and writes applied
// after their caller timed out. It is how tests reach the failure paths of
// the protocol without a real network. Safe for concurrent use; the fault
// sequence is deterministic only for a deterministic order of calls.
type Fault struct {
	inner Store
	cfg   FaultConfig

	mu      sync.Mutex
	rng     *rand.Rand
	enabled bool
	stats   FaultStats
	pending int        // held writes not yet applied
	idle    *sync.Cond // signalled when pending drops to 0
}

// NewFault wraps inner. Faults are enabled from the start. Rates outside
// [0, 1] act as clamped, negative durations as zero (see Validate).
func NewFault(inner Store, cfg FaultConfig) *Fault {
	if cfg.DelayedApply <= 0 {
		cfg.DelayedApply = 50 * time.Millisecond
	}
	f := &Fault{
		inner:   inner,
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		enabled: true,
		stats:   FaultStats{Calls: make(map[Op]int64), Injected: make(map[Op]int64)},
	}
	f.idle = sync.NewCond(&f.mu)
	return f
}

// SetEnabled switches fault injection (latency included) on or off. Writes
// already held back still land.
func (f *Fault) SetEnabled(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enabled = on
}

// Stats returns a copy of the counters.
func (f *Fault) Stats() FaultStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.Calls = maps.Clone(f.stats.Calls)
	s.Injected = maps.Clone(f.stats.Injected)
	return s
}

// Drain waits until every write held back before the call has been applied
// to the inner store (or refused by it).
func (f *Fault) Drain() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.pending > 0 {
		f.idle.Wait()
	}
}

// faultPlan is what happens to one call.
type faultPlan struct {
	delay   time.Duration
	fail    bool // ErrTransient without reaching the inner store
	lost    bool // applied, then reported as timed out
	delayed bool // reported as timed out, applied later
}

// plan counts a call and draws its fate. The number of draws per call
// depends only on the operation, so one seed gives one sequence.
func (f *Fault) plan(op Op) faultPlan {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Calls[op]++
	if !f.enabled {
		return faultPlan{}
	}
	p := faultPlan{delay: max(f.cfg.Latency, 0)}
	jitter := f.rng.Float64()
	if f.cfg.Jitter > 0 {
		p.delay += time.Duration(jitter * float64(f.cfg.Jitter))
	}
	rate, ok := f.cfg.ErrorRates[op]
	if !ok {
		rate = f.cfg.ErrorRate
	}
	p.fail = f.rng.Float64() < rate
	if op.isWrite() {
		u := f.rng.Float64()
		p.lost = !p.fail && u < f.cfg.LostReplyRate
		p.delayed = !p.fail && !p.lost && u < f.cfg.LostReplyRate+f.cfg.DelayedApplyRate
	}
	switch {
	case p.fail:
		f.stats.Injected[op]++
	case p.lost:
		f.stats.LostReplies++
	}
	return p
}

// begin plans a call and waits out its latency. A non-nil error ends the
// call: an injected failure or the caller's context.
func (f *Fault) begin(ctx context.Context, op Op, key string) (faultPlan, error) {
	p := f.plan(op)
	if p.delay > 0 {
		if err := backoff.Sleep(ctx, p.delay); err != nil {
			return p, fmt.Errorf("fault: %s %s: %w", op, key, err)
		}
	}
	if p.fail {
		return p, fmt.Errorf("fault: %s %s: injected failure: %w", op, key, ErrTransient)
	}
	return p, nil
}

// write runs a write under its plan: forwarded, applied with a lost reply,
// or held back and applied later. A held-back write keeps its own copy of
// body, since the caller may reuse the slice once it has its error.
func (f *Fault) write(ctx context.Context, op Op, key string, body []byte, apply func(context.Context, []byte) (string, error)) (string, error) {
	p, err := f.begin(ctx, op, key)
	if err != nil {
		return "", err
	}
	lost := fmt.Errorf("fault: %s %s: reply lost: %w (%w)", op, key, ErrTransient, context.DeadlineExceeded)
	switch {
	case p.lost:
		apply(ctx, body) // whatever the store answers, the caller never hears it
		return "", lost
	case p.delayed:
		late, body := context.WithoutCancel(ctx), bytes.Clone(body)
		f.hold()
		go func() {
			time.Sleep(f.cfg.DelayedApply)
			_, err := apply(late, body)
			f.applied(err == nil)
		}()
		return "", lost
	}
	return apply(ctx, body)
}

// hold records a write being held back.
func (f *Fault) hold() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.DelayedWrites++
	f.pending++
}

// applied records the end of a held-back write.
func (f *Fault) applied(ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ok {
		f.stats.DelayedApplied++
	} else {
		f.stats.DelayedRejected++
	}
	f.pending--
	if f.pending == 0 {
		f.idle.Broadcast()
	}
}

func (f *Fault) Get(ctx context.Context, key string) (Object, error) {
	if _, err := f.begin(ctx, OpGet, key); err != nil {
		return Object{}, err
	}
	return f.inner.Get(ctx, key)
}

func (f *Fault) GetIfNoneMatch(ctx context.Context, key, etag string) (Object, error) {
	if _, err := f.begin(ctx, OpGetIfNoneMatch, key); err != nil {
		return Object{}, err
	}
	return f.inner.GetIfNoneMatch(ctx, key, etag)
}

func (f *Fault) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if _, err := f.begin(ctx, OpGetRange, key); err != nil {
		return nil, err
	}
	return f.inner.GetRange(ctx, key, off, n)
}

func (f *Fault) Head(ctx context.Context, key string) (Attrs, error) {
	if _, err := f.begin(ctx, OpHead, key); err != nil {
		return Attrs{}, err
	}
	return f.inner.Head(ctx, key)
}

func (f *Fault) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	meta = maps.Clone(meta)
	return f.write(ctx, OpPutIfAbsent, key, body, func(ctx context.Context, body []byte) (string, error) {
		return f.inner.PutIfAbsent(ctx, key, body, meta)
	})
}

func (f *Fault) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	return f.write(ctx, OpPutIfMatch, key, body, func(ctx context.Context, body []byte) (string, error) {
		return f.inner.PutIfMatch(ctx, key, body, etag)
	})
}

func (f *Fault) Put(ctx context.Context, key string, body []byte) (string, error) {
	return f.write(ctx, OpPut, key, body, func(ctx context.Context, body []byte) (string, error) {
		return f.inner.Put(ctx, key, body)
	})
}

func (f *Fault) List(ctx context.Context, prefix, startAfter string, fn func(Attrs) error) error {
	if _, err := f.begin(ctx, OpList, prefix); err != nil {
		return err
	}
	return f.inner.List(ctx, prefix, startAfter, fn)
}

func (f *Fault) Delete(ctx context.Context, key string) error {
	_, err := f.write(ctx, OpDelete, key, nil, func(ctx context.Context, _ []byte) (string, error) {
		return "", f.inner.Delete(ctx, key)
	})
	return err
}
