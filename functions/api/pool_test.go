package api

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// TestLeaseHeldElsewhere: a live lease is never taken over; the request
// waits LeaseWait, then answers 503 with Retry-After, and succeeds once the
// holder releases within the wait.
func TestLeaseHeldElsewhere(t *testing.T) {
	store := objstore.NewMemory()
	cfg := testConfig(t)
	d := cfg.Config
	d.EnsureDefaults()
	leases, err := coordinator.NewLeases(store, segmentlog.Layout{}, d.Lease(), coordinator.WithRequestTimeout(d.LeaseRequestTimeout()))
	if err != nil {
		t.Fatal(err)
	}
	nonce := uuid.Must(uuid.NewV7()).String()
	g, err := leases.Acquire(t.Context(), "p0", "elsewhere", nonce)
	if err != nil {
		t.Fatal(err)
	}

	ts := newTestServer(t, cfg, store)
	start := time.Now()
	r := ts.postJSON("/v1/pchannels/p0/append", msgs("v0", "a"))
	took := time.Since(start)
	if r.status != http.StatusServiceUnavailable || r.errorCode(t) != wire.CodeLeaseHeld {
		t.Fatalf("append under a live lease: %d %s", r.status, r.body)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if took < cfg.LeaseWait {
		t.Fatalf("answered after %v, before the lease wait %v", took, cfg.LeaseWait)
	}
	if l, _ := leases.Describe(t.Context(), "p0"); l.Term != g.Term || l.Holder != "elsewhere" {
		t.Fatalf("the live lease changed: %+v", l)
	}

	// Released during a longer wait, once the request's first acquire has
	// read the live record (and been refused): the request gets the lease.
	cfg.LeaseWait = 3 * time.Second
	refused := make(chan struct{})
	var once sync.Once
	patient := newTestServer(t, cfg, objstore.Observe(store, func(r objstore.Request) {
		if r.Op == objstore.OpGet && r.Key == (segmentlog.Layout{}).Lease("p0") && r.Err == nil {
			once.Do(func() { close(refused) })
		}
	}))
	go func() {
		select {
		case <-refused:
			_ = leases.Release(context.Background(), "p0", g.Term, nonce, 0, 0)
		case <-t.Context().Done():
		}
	}()
	ar := patient.mustAppend("p0", msgs("v0", "b"))
	if ar.Term != g.Term+1 {
		t.Fatalf("term %d after the release of %d", ar.Term, g.Term)
	}
}

// TestFencedWriterReopens: a writer fenced by a newer term stops; the pool
// retries the append on a fresh writer (503 while the new holder is live)
// and reopens once the lease is free.
func TestFencedWriterReopens(t *testing.T) {
	store := objstore.NewMemory()
	a := newTestServer(t, testConfig(t), store)
	first := a.mustAppend("p0", msgs("v0", "a"))

	// B's clock runs ahead: to it, A's lease has expired; it takes over.
	cfgB := testConfig(t)
	cfgB.Holder = "b"
	cfgB.Now = func() time.Time { return time.Now().Add(time.Minute) }
	b := newTestServer(t, cfgB, store)
	fromB := b.mustAppend("p0", msgs("v0", "b"))
	if fromB.Term <= first.Term {
		t.Fatalf("B's term %d not above A's %d", fromB.Term, first.Term)
	}

	r := a.postJSON("/v1/pchannels/p0/append", msgs("v0", "c"))
	if r.status != http.StatusServiceUnavailable || r.errorCode(t) != wire.CodeLeaseHeld {
		t.Fatalf("append on A after B took over: %d %s", r.status, r.body)
	}
	if err := b.srv.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	again := a.mustAppend("p0", msgs("v0", "d"))
	if again.Term <= fromB.Term {
		t.Fatalf("A reopened at term %d, B had %d", again.Term, fromB.Term)
	}
	got := a.mustRead("/v1/pchannels/p0/messages")
	var payloads []string
	for _, m := range got.Messages {
		payloads = append(payloads, string(m.Payload))
	}
	if len(payloads) != 3 || payloads[0] != "a" || payloads[1] != "b" || payloads[2] != "d" {
		t.Fatalf("delivered %q, want [a b d]", payloads)
	}
}

// TestThawedWriterRenews: a writer whose lease deadline passed while
// nobody acquired (a Lambda container thawed after a long freeze) renews
// and keeps its term and cache instead of being replaced.
func TestThawedWriterRenews(t *testing.T) {
	var skew atomic.Int64
	cfg := testConfig(t)
	cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	cfg.TimeTickInterval = -1 // no timetick batch in between: the next offset is exact
	ts := newTestServer(t, cfg, objstore.NewMemory())
	first := ts.mustAppend("p0", msgs("v0", "a"))

	skew.Store(int64(2 * cfg.LeaseTTL)) // the freeze: the deadline is long gone
	again := ts.mustAppend("p0", msgs("v0", "b"))
	if again.Term != first.Term || again.Acks[0].Offset != first.Acks[0].Offset+1 {
		t.Fatalf("after the thaw: term %d offset %d, before: term %d offset %d",
			again.Term, again.Acks[0].Offset, first.Term, first.Acks[0].Offset)
	}
}
