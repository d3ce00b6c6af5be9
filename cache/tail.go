package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrNoWriter is returned (wrapped) by Tail.Wait when the pchannel has no live
// in-process writer: none has published yet, or its writer called Forget. The
// reader must then find the tail itself by long-polling the store.
var ErrNoWriter = errors.New("cache: no in-process writer")

// Tail tells in-process readers how far each pchannel is acknowledged, so a
// reader at the tail sleeps until the writer acks more instead of polling the
// store.
//
// For each pchannel the writer publishes its ack frontier: the next offset to
// be acked, so every offset below it is acked. The frontier only rises: a
// lower or equal value is ignored. A pchannel is live from its first Publish
// until Forget (lease lost, writer closed); a later Publish makes it live
// again, and the frontier stays monotone across that.
//
// Wakeups are a broadcast: each pchannel has one channel that Publish and
// Forget close and replace. There is no goroutine per waiter and no polling.
//
// The zero Tail is ready to use. A Tail is safe for concurrent use.
type Tail struct {
	mu    sync.Mutex
	chans map[string]*tailState // guarded by mu

	// onPark, when set (only this package's tests set it, before any
	// Wait), is called with +1 as a Wait blocks and -1 as it wakes, so a
	// test knows a waiter is parked instead of sleeping and hoping.
	onPark func(delta int)
}

// tailState is one pchannel's notification state; guarded by Tail.mu.
type tailState struct {
	frontier uint64
	live     bool
	changed  chan struct{} // closed and replaced on every change
}

// Publish records that every offset of pchannel below frontier is acked and
// wakes the readers waiting on a lower one. It makes pchannel live.
func (t *Tail) Publish(pchannel string, frontier uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.state(pchannel)
	if frontier <= st.frontier && st.live {
		return
	}
	st.frontier = max(st.frontier, frontier)
	st.live = true
	close(st.changed)
	st.changed = make(chan struct{})
}

// Forget marks pchannel as having no live in-process writer, and wakes its
// waiters, who get ErrNoWriter. Call it when the writer loses its lease or
// stops. The last frontier is kept (Frontier still returns it, with false).
func (t *Tail) Forget(pchannel string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.chans[pchannel]
	if !ok || !st.live {
		return
	}
	st.live = false
	close(st.changed)
	st.changed = make(chan struct{})
}

// Frontier returns pchannel's last published frontier and whether a live
// in-process writer publishes it. (0, false) for a pchannel never published.
func (t *Tail) Frontier(pchannel string) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.chans[pchannel]
	if !ok {
		return 0, false
	}
	return st.frontier, st.live
}

// Wait blocks until pchannel's frontier is above after — that is, until the
// offset after is acked — and returns the frontier. It returns at once if it
// already is. Otherwise it returns with an error:
//   - wrapping ErrNoWriter if pchannel has no live writer, now or while
//     waiting (the frontier returned is the last known one);
//   - ctx.Err() if ctx is done first (with the current frontier).
func (t *Tail) Wait(ctx context.Context, pchannel string, after uint64) (uint64, error) {
	for {
		var (
			frontier uint64
			live     bool
			changed  chan struct{}
		)
		t.mu.Lock()
		if st, ok := t.chans[pchannel]; ok { // readers never create state
			frontier, live, changed = st.frontier, st.live, st.changed
		}
		t.mu.Unlock()
		switch {
		case frontier > after:
			return frontier, nil
		case !live:
			return frontier, fmt.Errorf("tail %s after %d: %w", pchannel, after, ErrNoWriter)
		}
		t.parked(1)
		select {
		case <-changed:
			t.parked(-1)
		case <-ctx.Done():
			t.parked(-1)
			return frontier, ctx.Err()
		}
	}
}

// parked calls the test hook onPark, if set.
func (t *Tail) parked(delta int) {
	if t.onPark != nil {
		t.onPark(delta)
	}
}

// state returns pchannel's state, creating it (not live) if needed; only
// Publish calls it, so the map holds only pchannels that had a writer. t.mu
// must be held.
func (t *Tail) state(pchannel string) *tailState {
	st, ok := t.chans[pchannel]
	if !ok {
		if t.chans == nil {
			t.chans = make(map[string]*tailState)
		}
		st = &tailState{changed: make(chan struct{})}
		t.chans[pchannel] = st
	}
	return st
}
