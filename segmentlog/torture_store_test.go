package segmentlog_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/objstoretest"
	sl "github.com/cairnlog/cairn/segmentlog"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// newProcess wraps an actor's store in the process model of the shared
// test kit, counting WAL slot writes.
func newProcess(store objstore.Store) *objstoretest.Process {
	return &objstoretest.Process{Store: store, Counts: isSlotKey}
}

func isSlotKey(key string) bool { return strings.Contains(key, "/wal/") }

// fenceWatch is the shared store every actor's stack ends in. It lets a
// frozen zombie thaw at a chosen moment of the next takeover of its
// pchannel: "before", its queued PUTs go out and come back before any slot
// of the newer term's window is sent, so they win the slots the new holder
// found empty; "after", the newer fence lands first and the window's
// fillers wait until the zombie's PUTs came back, so they land inside the
// window as garbage — the state the fence window exists for.
//
// It also checks I5 on the lease records as they are written: a term is
// granted to one nonce only.
type fenceWatch struct {
	objstore.Store
	t        *testing.T
	nonces   sync.Map // lease term → nonce
	violated atomic.Bool
	mu       sync.Mutex
	waiting  []fenceWaiter
	events   map[uint64]*takeover // by the newer term
}

// fenceWaiter is one zombie of term waiting for a takeover. go_ is closed
// to thaw it; it closes done once its PUTs came back.
type fenceWaiter struct {
	term   uint64
	before bool
	go_    chan struct{}
	done   chan struct{}
}

// takeover is the window claim of one newer term and the zombies it woke.
type takeover struct {
	before, after []fenceWaiter
	fenceLanded   chan struct{}
	landed        bool
}

// holdLimit bounds every wait of a held PUT, so that a zombie that never
// comes back cannot stall a takeover for good.
const holdLimit = 10 * time.Second

func (fw *fenceWatch) waitFence(term uint64, before bool) fenceWaiter {
	w := fenceWaiter{term: term, before: before, go_: make(chan struct{}), done: make(chan struct{})}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.waiting = append(fw.waiting, w)
	return w
}

// cancel drops a waiter that gave up waiting (no takeover came).
func (fw *fenceWatch) cancel(w fenceWaiter) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	out := fw.waiting[:0]
	for _, x := range fw.waiting {
		if x.go_ != w.go_ {
			out = append(out, x)
		}
	}
	fw.waiting = out
}

// event returns the takeover of term, taking into it every waiting zombie
// of a lower term; "before" zombies are thawed at once.
func (fw *fenceWatch) event(term uint64) *takeover {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.events == nil {
		fw.events = make(map[uint64]*takeover)
	}
	ev, ok := fw.events[term]
	if !ok {
		ev = &takeover{fenceLanded: make(chan struct{})}
		fw.events[term] = ev
	}
	rest := fw.waiting[:0]
	for _, w := range fw.waiting {
		switch {
		case w.term >= term:
			rest = append(rest, w)
		case w.before:
			ev.before = append(ev.before, w)
			close(w.go_)
		case ev.landed:
			ev.after = append(ev.after, w)
			close(w.go_)
		default:
			ev.after = append(ev.after, w)
		}
	}
	fw.waiting = rest
	return ev
}

func (fw *fenceWatch) fenceDone(ev *takeover) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if !ev.landed {
		ev.landed = true
		close(ev.fenceLanded)
		for _, w := range ev.after {
			close(w.go_)
		}
	}
}

func waitAll(ws []fenceWaiter) {
	for _, w := range ws {
		select {
		case <-w.done:
		case <-time.After(holdLimit):
		}
	}
}

// leaseWritten checks a lease record that was just written.
func (fw *fenceWatch) leaseWritten(key string, body []byte) {
	if !strings.Contains(key, "/leases/") {
		return
	}
	var l struct {
		Term  uint64 `json:"term"`
		Nonce string `json:"nonce"`
	}
	if json.Unmarshal(body, &l) != nil {
		return
	}
	if prev, loaded := fw.nonces.LoadOrStore(l.Term, l.Nonce); loaded && prev != l.Nonce {
		fw.violated.Store(true)
		fw.t.Errorf("I5: lease term %d granted to two nonces, %v and %s", l.Term, prev, l.Nonce)
	}
}

func (fw *fenceWatch) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	etag, err := fw.Store.PutIfMatch(ctx, key, body, etag)
	if err == nil {
		fw.leaseWritten(key, body)
	}
	return etag, err
}

func (fw *fenceWatch) Put(ctx context.Context, key string, body []byte) (string, error) {
	etag, err := fw.Store.Put(ctx, key, body)
	if err == nil {
		fw.leaseWritten(key, body)
	}
	return etag, err
}

func (fw *fenceWatch) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	h, herr := sl.DecodeHeader(body)
	if herr != nil || (h.Kind != sl.KindFence && h.Kind != sl.KindFiller) {
		etag, err := fw.Store.PutIfAbsent(ctx, key, body, meta)
		if err == nil {
			fw.leaseWritten(key, body)
		}
		return etag, err
	}
	ev := fw.event(h.Term)
	fw.mu.Lock()
	before, after := slices.Clone(ev.before), slices.Clone(ev.after)
	fw.mu.Unlock()
	waitAll(before)
	if h.Kind == sl.KindFiller && len(after) > 0 {
		select {
		case <-ev.fenceLanded:
			waitAll(after)
		case <-time.After(holdLimit):
		}
	}
	etag, err := fw.Store.PutIfAbsent(ctx, key, body, meta)
	if h.Kind == sl.KindFence && err == nil {
		fw.fenceDone(ev)
	}
	return etag, err
}
