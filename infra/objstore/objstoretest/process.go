package objstoretest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// Process models the operating-system process a component runs in, as
// the tortures see it: wrap the store a component uses, then Freeze, Thaw
// or Crash it.
//
// While frozen every call blocks — every operation, plain Put and Delete
// included — and the calls blocked go out at Thaw with no deadline (the
// process had already decided to send them), as a paused VM, a GC pause or
// a thawed Lambda environment sends its queued requests. After Crash the
// process is dying: each call is sent or not, at random, and its caller
// never hears back (an error wrapping objstore.ErrTransient), so outcomes
// become unknown. Safe for concurrent use.
type Process struct {
	objstore.Store
	// Counts, if set, selects the writes that BlockedWrites and
	// DyingWrites count (for instance WAL slot keys); nil counts every
	// write.
	Counts func(key string) bool

	mu          sync.Mutex
	frozen      chan struct{}
	crashed     bool
	rng         *rand.Rand
	afterReply  func(key string) bool // FreezeAfterReply's trigger, until it fires
	frozenAfter chan struct{}         // closed when it fired

	blocked, blockedWrites, dyingWrites atomic.Int64
	inGate                              sync.WaitGroup
}

// ErrDying is what a crashed process's callers get.
var ErrDying = fmt.Errorf("objstoretest: process dying, no reply: %w", objstore.ErrTransient)

// Freeze stops the process: calls from now on block until Thaw.
func (p *Process) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen == nil {
		p.frozen = make(chan struct{})
	}
}

// FreezeAfterReply arms a one-shot freeze: the first Get of a key match
// accepts (or GetIfNoneMatch) is sent and answered by the store, and then the process freezes
// before its caller sees the answer, which it gets only at Thaw — by then
// it may be stale, as a reply is that waited in a stopped process's socket.
// The returned channel is closed when the freeze has happened.
func (p *Process) FreezeAfterReply(match func(key string) bool) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.afterReply, p.frozenAfter = match, make(chan struct{})
	return p.frozenAfter
}

// afterGet freezes the process after a Get of key if FreezeAfterReply
// armed it, and holds the reply until Thaw.
func (p *Process) afterGet(key string) {
	p.mu.Lock()
	if p.afterReply == nil || !p.afterReply(key) || p.crashed {
		p.mu.Unlock()
		return
	}
	p.afterReply = nil
	if p.frozen == nil {
		p.frozen = make(chan struct{})
	}
	ch := p.frozen
	close(p.frozenAfter)
	p.mu.Unlock()
	<-ch
}

// Thaw lets every blocked call go out and waits up to limit for them to
// come back from the store, so that a caller can order "the frozen
// process's requests landed" before what it does next. It returns how many
// calls, and how many counted writes, were blocked since the process
// started.
func (p *Process) Thaw(limit time.Duration) (calls, writes int64) {
	p.mu.Lock()
	calls, writes = p.blocked.Load(), p.blockedWrites.Load()
	if p.frozen != nil {
		close(p.frozen)
		p.frozen = nil
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.inGate.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
	}
	return calls, writes
}

// Crash makes the process die: from now on each call is sent or dropped
// at random (by seed) and never answered.
func (p *Process) Crash(seed uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.crashed = true
	p.rng = rand.New(rand.NewPCG(seed, 3))
}

// BlockedWrites is how many counted writes are or were blocked in a freeze.
func (p *Process) BlockedWrites() int64 { return p.blockedWrites.Load() }

// DyingWrites is how many counted writes the process made after Crash.
func (p *Process) DyingWrites() int64 { return p.dyingWrites.Load() }

func (p *Process) counts(key string) bool { return key != "" && (p.Counts == nil || p.Counts(key)) }

// gate returns the context to send with; send=false means the call is
// dropped; lost=true means the caller must not learn the result. release
// must be called once the call came back from the store.
func (p *Process) gate(ctx context.Context, writeKey string) (_ context.Context, send, lost bool, release func()) {
	p.mu.Lock()
	ch, crashed := p.frozen, p.crashed
	coin := crashed && p.rng.IntN(2) == 0
	if ch != nil {
		p.inGate.Add(1)
	}
	p.mu.Unlock()
	if crashed {
		if p.counts(writeKey) {
			p.dyingWrites.Add(1)
		}
		return context.Background(), coin, true, func() {}
	}
	if ch != nil {
		p.blocked.Add(1)
		if p.counts(writeKey) {
			p.blockedWrites.Add(1)
		}
		<-ch
		return context.Background(), true, false, p.inGate.Done
	}
	return ctx, true, false, func() {}
}

func (p *Process) Get(ctx context.Context, key string) (objstore.Object, error) {
	ctx, send, lost, release := p.gate(ctx, "")
	defer release()
	if lost || !send {
		return objstore.Object{}, ErrDying
	}
	obj, err := p.Store.Get(ctx, key)
	p.afterGet(key)
	return obj, err
}

func (p *Process) GetIfNoneMatch(ctx context.Context, key, etag string) (objstore.Object, error) {
	ctx, send, lost, release := p.gate(ctx, "")
	defer release()
	if lost || !send {
		return objstore.Object{}, ErrDying
	}
	obj, err := p.Store.GetIfNoneMatch(ctx, key, etag)
	p.afterGet(key)
	return obj, err
}

func (p *Process) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	ctx, send, lost, release := p.gate(ctx, "")
	defer release()
	if lost || !send {
		return nil, ErrDying
	}
	return p.Store.GetRange(ctx, key, off, n)
}

func (p *Process) Head(ctx context.Context, key string) (objstore.Attrs, error) {
	ctx, send, lost, release := p.gate(ctx, "")
	defer release()
	if lost || !send {
		return objstore.Attrs{}, ErrDying
	}
	return p.Store.Head(ctx, key)
}

func (p *Process) List(ctx context.Context, prefix, startAfter string, fn func(objstore.Attrs) error) error {
	ctx, send, lost, release := p.gate(ctx, "")
	defer release()
	if lost || !send {
		return ErrDying
	}
	return p.Store.List(ctx, prefix, startAfter, fn)
}

// write sends one write through the gate.
func (p *Process) write(ctx context.Context, key string, do func(context.Context) (string, error)) (string, error) {
	ctx, send, lost, release := p.gate(ctx, key)
	defer release()
	if send {
		etag, err := do(ctx)
		if !lost {
			return etag, err
		}
	}
	return "", ErrDying
}

func (p *Process) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	return p.write(ctx, key, func(ctx context.Context) (string, error) { return p.Store.PutIfAbsent(ctx, key, body, meta) })
}

func (p *Process) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	return p.write(ctx, key, func(ctx context.Context) (string, error) { return p.Store.PutIfMatch(ctx, key, body, etag) })
}

func (p *Process) Put(ctx context.Context, key string, body []byte) (string, error) {
	return p.write(ctx, key, func(ctx context.Context) (string, error) { return p.Store.Put(ctx, key, body) })
}

func (p *Process) Delete(ctx context.Context, key string) error {
	_, err := p.write(ctx, key, func(ctx context.Context) (string, error) { return "", p.Store.Delete(ctx, key) })
	return err
}
