package lambdaemu

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Sentinel errors; Invoke's errors and the Function URL's error answers
// come from these (check with errors.Is).
var (
	ErrThrottled = errors.New("lambdaemu: throttled: every environment is busy")
	ErrTimeout   = errors.New("lambdaemu: Sandbox.Timedout: function timed out")
	ErrFunction  = errors.New("lambdaemu: function error")
	ErrInit      = errors.New("lambdaemu: init failed")
	ErrEnvDied   = errors.New("lambdaemu: environment died during the invocation")
	ErrClosed    = errors.New("lambdaemu: function closed")
)

// Function is one emulated Lambda function: its environments, its router
// and its Function URL. Safe for concurrent use.
type Function struct {
	cfg   Config
	front *http.Server
	ln    net.Listener
	url   string

	mu        sync.Mutex
	closed    bool
	nextID    int
	all       []*Env // every environment ever started, in start order
	throttles int64
	hooks     []func() // to run once f.mu is released; see afterUnlock
}

// Start validates cfg and serves the function's URL on a loopback port.
// No environment starts before the first request.
func Start(cfg Config) (*Function, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	f := &Function{cfg: cfg}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("lambdaemu: function URL: %w", err)
	}
	f.ln, f.url = ln, "http://"+ln.Addr().String()
	f.front = &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	go f.front.Serve(ln)
	return f, nil
}

// URL returns the Function URL's loopback base, e.g. "http://127.0.0.1:40123".
func (f *Function) URL() string { return f.url }

// Envs returns the environments not dead yet, in start order.
func (f *Function) Envs() []*Env {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*Env
	for _, e := range f.all {
		if e.state != StateDead {
			out = append(out, e)
		}
	}
	return out
}

// Close kills every environment (no Shutdown phase), waits until their
// processes are gone, and stops the Function URL.
func (f *Function) Close() error {
	f.mu.Lock()
	f.closed = true
	envs := slices.Clone(f.all)
	f.mu.Unlock()
	for _, e := range envs {
		e.end(fmt.Errorf("%w: %w", ErrEnvDied, ErrClosed), false)
		<-e.dead
	}
	return f.front.Close()
}

// afterUnlock queues fn (a hook call) to run once f.mu is released by
// unlock. Called with f.mu held.
func (f *Function) afterUnlock(fn func()) { f.hooks = append(f.hooks, fn) }

// unlock releases f.mu and runs the queued hooks.
func (f *Function) unlock() {
	hooks := f.hooks
	f.hooks = nil
	f.mu.Unlock()
	for _, h := range hooks {
		h()
	}
}

// route hands inv to an idle environment chosen by the policy, or to a
// new one, or refuses it with ErrThrottled.
func (f *Function) route(inv *invocation) error {
	f.mu.Lock()
	defer f.unlock()
	if f.closed {
		return ErrClosed
	}
	var idle []Idle
	byID := map[int]*Env{}
	alive := 0
	for _, e := range f.all {
		switch e.state {
		case StateIdle:
			idle = append(idle, Idle{ID: e.id, IdleSince: e.idleSince})
			byID[e.id] = e
			alive++
		case StateInit, StateBusy, StateStopping:
			alive++
		}
	}
	if len(idle) > 0 {
		e := byID[idle[f.cfg.Policy.Pick(idle)].ID]
		e.idleGen++
		if e.frozen {
			e.thaw()
			e.stats.Thaws++
		}
		e.state = StateBusy
		f.dispatch(e, inv)
		return nil
	}
	if alive >= f.cfg.ReservedConcurrency {
		f.throttles++
		return ErrThrottled
	}
	f.nextID++
	e, err := f.startEnv(f.nextID)
	if err != nil {
		return err
	}
	f.all = append(f.all, e)
	e.stats.ColdStarts++
	e.queued = inv
	return nil
}

// Invoke runs one invocation with payload as its event (a
// RequestResponse invoke) and returns the runtime's answer, read to the
// end. A function error returns the error payload with an error wrapping
// ErrFunction; a throttle, timeout, init failure or crash returns an error
// wrapping ErrThrottled, ErrTimeout, ErrInit or ErrEnvDied. If ctx ends
// first Invoke returns, and the invocation runs on unobserved.
func (f *Function) Invoke(ctx context.Context, payload []byte) (Result, error) {
	inv := newInvocation(rand.Text(), payload)
	if err := f.route(inv); err != nil {
		return Result{}, err
	}
	o, err := inv.wait(ctx)
	if err != nil {
		return Result{}, err
	}
	if o.err != nil {
		return Result{EnvID: o.envID, Payload: o.errBody}, o.err
	}
	body, err := o.resp.readAll()
	res := Result{EnvID: o.envID, ContentType: o.resp.contentType, Payload: body}
	if err == nil && o.resp.errorType != "" {
		err = fmt.Errorf("%w: %s (error trailer)", ErrFunction, o.resp.errorType)
	}
	return res, err
}

// Result is a runtime's answer to Invoke.
type Result struct {
	EnvID       int    // the environment that ran it
	ContentType string // the runtime's Content-Type
	Payload     []byte // the response, or the error payload
}
