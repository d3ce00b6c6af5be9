package lambdaemu

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"time"
)

// dispatch hands inv to e's runtime, which is waiting for it, and the
// INVOKE event to the extensions that subscribed. Called with f.mu held.
func (f *Function) dispatch(e *Env, inv *invocation) {
	inv.env = e
	inv.deadline = time.Now().Add(f.cfg.Timeout)
	inv.timer = time.AfterFunc(f.cfg.Timeout, func() { f.timedOut(e, inv) })
	e.current = inv
	e.runtimeWaiting = false
	e.stats.Invocations++
	select {
	case e.invokes <- inv:
	default: // a runtime that dropped its own /next: it cannot take inv
	}
	ev, _ := json.Marshal(map[string]any{
		"eventType": "INVOKE", "deadlineMs": inv.deadline.UnixMilli(), "requestId": inv.id,
		"invokedFunctionArn": f.arn(),
		"tracing":            map[string]string{"type": "X-Amzn-Trace-Id", "value": traceID},
	})
	for _, x := range e.extensions {
		if x.events[eventInvoke] {
			x.waiting = false
			x.deliver(ev)
		}
	}
}

// settle moves e on once its runtime and every extension wait for the
// next event: the init phase ends, the running invocation completes, and
// e takes its queued invocation or goes idle and is frozen. Called with
// f.mu held whenever one of them asks for the next event.
func (f *Function) settle(e *Env) {
	if e.state != StateInit && e.state != StateBusy {
		return
	}
	if !e.runtimeWaiting || e.unregistered > 0 {
		return
	}
	for _, x := range e.extensions {
		if !x.waiting {
			return
		}
	}
	now := time.Now()
	if !e.inited {
		e.inited = true
		e.initTimer.Stop()
		e.stats.InitTime += now.Sub(e.started)
	}
	if inv := e.current; inv != nil {
		inv.timer.Stop()
		e.current = nil
	}
	if inv := e.queued; inv != nil {
		e.queued = nil
		e.state = StateBusy
		f.dispatch(e, inv)
		return
	}
	e.state = StateIdle
	e.idleSince = now
	e.idleGen++
	f.afterUnlock(func() {
		if f.cfg.Hooks.Idle != nil {
			f.cfg.Hooks.Idle(e)
		}
	})
	if e.lostAfter {
		e.state = StateLost
		e.freeze()
		return
	}
	if !f.cfg.NoFreeze {
		e.freeze()
	}
	if f.cfg.IdleTimeout > 0 {
		gen := e.idleGen
		time.AfterFunc(f.cfg.IdleTimeout, func() { f.idleTimedOut(e, gen) })
	}
}

// idleTimedOut reaps e if it is still in idle period gen.
func (f *Function) idleTimedOut(e *Env, gen int) {
	f.mu.Lock()
	stale := e.state != StateIdle || e.idleGen != gen
	f.mu.Unlock()
	if !stale {
		e.end(nil, f.cfg.Reap == ReapShutdown)
	}
}

// initTimedOut ends e if its init phase is still running.
func (f *Function) initTimedOut(e *Env) {
	f.mu.Lock()
	late := !e.inited && e.state == StateInit
	if late {
		e.stats.InitErrors++
	}
	f.mu.Unlock()
	if late {
		e.end(fmt.Errorf("%w: Sandbox.Timedout: init phase longer than %v", ErrInit, f.cfg.InitTimeout), false)
	}
}

// timedOut ends e if inv is still running: Lambda destroys an environment
// whose invocation passed the function timeout.
func (f *Function) timedOut(e *Env, inv *invocation) {
	f.mu.Lock()
	late := e.current == inv && e.state == StateBusy
	if late {
		e.stats.Timeouts++
	}
	f.mu.Unlock()
	if late {
		e.end(fmt.Errorf("%w after %v", ErrTimeout, f.cfg.Timeout), false)
	}
}

// end takes e away: with a Shutdown phase if graceful, else by SIGKILL.
// reason (nil for a reap) is what a running invocation fails with. It
// returns once the Shutdown phase is over or the SIGKILL sent; e.Done()
// closes when the processes are gone.
func (e *Env) end(reason error, graceful bool) {
	f := e.f
	f.mu.Lock()
	if e.state == StateStopping || e.state == StateDead {
		f.mu.Unlock()
		return
	}
	if reason == nil {
		reason = fmt.Errorf("%w: environment reaped", ErrEnvDied)
		if graceful {
			e.stats.ReapsGraceful++
		} else {
			e.stats.ReapsKilled++
		}
	}
	e.exitReason = reason
	e.state = StateStopping
	e.idleGen++
	var grace time.Duration
	if graceful && len(e.extensions) > 0 {
		grace = GraceInternal
		for _, x := range e.extensions {
			if x.external {
				grace = GraceExternal
			}
		}
		deadline := time.Now().Add(grace)
		e.shutdown, _ = json.Marshal(map[string]any{"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": deadline.UnixMilli()})
		for _, x := range e.extensions {
			if x.events[eventShutdown] && x.waiting {
				x.waiting = false
				x.deliver(e.shutdown)
			}
		}
	}
	e.thaw()
	f.unlock()

	if grace > 0 {
		_ = syscall.Kill(e.pid, syscall.SIGTERM)
		timer := time.NewTimer(grace)
		defer timer.Stop()
	wait:
		for _, ch := range e.exited {
			select {
			case <-ch:
			case <-timer.C:
				break wait
			}
		}
	}
	e.signal(syscall.SIGKILL)
}

// bury settles what e left behind once its processes are gone: the
// invocation it was running or had queued fails with the reason it ended.
func (f *Function) bury(e *Env) {
	f.mu.Lock()
	e.state = StateDead
	e.initTimer.Stop()
	var failed []*invocation
	for _, inv := range []*invocation{e.current, e.queued} {
		if inv != nil {
			if inv.timer != nil {
				inv.timer.Stop()
			}
			if !inv.settled {
				inv.settled = true
				failed = append(failed, inv)
			}
		}
	}
	e.current, e.queued = nil, nil
	reason := e.exitReason
	if e.initErr != nil {
		reason = fmt.Errorf("%w: %s", reason, e.initErr)
	}
	f.unlock()
	for _, inv := range failed {
		inv.send(outcome{envID: e.id, err: reason, errBody: e.initErr})
	}
	close(e.dead)
	e.srv.Close()
	os.RemoveAll(e.dir)
	if f.cfg.Hooks.Exited != nil {
		f.cfg.Hooks.Exited(e)
	}
}

// Kill sends SIGKILL to the environment's processes without warning, as
// Lambda does to an environment it gives up, and waits until they are
// gone. A running invocation fails (the client gets the Function URL's
// error answer). Counted as a kill.
func (e *Env) Kill() {
	e.end(nil, false)
	<-e.dead
}

// Reap runs the environment's Shutdown phase now (see ReapShutdown) and
// waits until its processes are gone. Counted as a graceful reap.
func (e *Env) Reap() {
	e.end(nil, true)
	<-e.dead
}

// Freeze stops the environment's processes now (SIGSTOP), whatever they
// are doing: a freeze Lambda would not make (in the middle of an
// invocation, or with Config.NoFreeze), for tests. A request routed to it
// thaws it, as does Thaw.
func (e *Env) Freeze() {
	e.f.mu.Lock()
	defer e.f.unlock()
	if e.state != StateStopping && e.state != StateDead {
		e.freeze()
	}
}

// Thaw continues the environment's processes (SIGCONT) if they are frozen;
// an idle environment stays idle.
func (e *Env) Thaw() {
	e.f.mu.Lock()
	defer e.f.unlock()
	if e.state != StateLost {
		e.thaw()
	}
}

// FreezeForever freezes the environment at its next idle (at once if it
// is idle now) and never thaws it: routing forgets it, as Lambda forgets a
// frozen environment it will never use again, so it no longer counts
// against the reserved concurrency. Close kills it.
func (e *Env) FreezeForever() {
	f := e.f
	f.mu.Lock()
	defer f.unlock()
	e.lostAfter = true
	if e.state == StateIdle {
		e.state = StateLost
		e.idleGen++
		e.freeze()
	}
}
