package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var testLayout = segmentlog.Layout{Prefix: "cairn"}

func newTestLeases(t *testing.T, store objstore.Store, now func() time.Time) *Leases {
	t.Helper()
	l, err := NewLeases(store, testLayout, LeaseConfig{}, WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustAcquire(t *testing.T, l *Leases, p, holder, nonce string) segmentlog.LeaseGrant {
	t.Helper()
	g, err := l.Acquire(context.Background(), p, holder, nonce)
	if err != nil {
		t.Fatalf("acquire %s by %s/%s: %v", p, holder, nonce, err)
	}
	return g
}

func mustDescribe(t *testing.T, l *Leases, p string) Lease {
	t.Helper()
	rec, err := l.Describe(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestAcquireFresh(t *testing.T) {
	clk := newFakeClock()
	l := newTestLeases(t, objstore.NewMemory(), clk.Now)
	g := mustAcquire(t, l, "p0", "node-a", "n1")
	want := segmentlog.LeaseGrant{PChannel: "p0", Term: 1, Nonce: "n1", Deadline: t0.Add(DefaultLeaseTTL - DefaultLeaseMargin),
		TickFloor: 0, TickMax: segmentlog.TickOf(t0.Add(DefaultLeaseTTL)), TailHint: 0}
	if g != want {
		t.Fatalf("grant %+v\nwant  %+v", g, want)
	}
	rec := mustDescribe(t, l, "p0")
	if rec.Term != 1 || rec.Version != 1 || rec.Holder != "node-a" || rec.Released || !rec.Expires.Equal(t0.Add(DefaultLeaseTTL)) {
		t.Fatalf("record %+v", rec)
	}
}

func TestAcquireHeld(t *testing.T) {
	clk := newFakeClock()
	l := newTestLeases(t, objstore.NewMemory(), clk.Now)
	mustAcquire(t, l, "p0", "node-a", "n1")
	clk.Advance(4 * time.Second)
	_, err := l.Acquire(context.Background(), "p0", "node-b", "n2")
	var he *HeldError
	if !errors.Is(err, ErrLeaseHeld) || !errors.As(err, &he) {
		t.Fatalf("err = %v, want a HeldError", err)
	}
	if want := DefaultLeaseTTL + DefaultLeaseMargin - 4*time.Second + time.Millisecond; he.RetryAfter != want ||
		he.Holder != "node-a" || he.Term != 1 || he.PChannel != "p0" {
		t.Fatalf("HeldError %+v, want RetryAfter %v", he, want)
	}
	// Waiting RetryAfter is enough.
	clk.Advance(he.RetryAfter)
	if g := mustAcquire(t, l, "p0", "node-b", "n2"); g.Term != 2 {
		t.Fatalf("term %d", g.Term)
	}
}

func TestAcquireAfterExpiry(t *testing.T) {
	clk := newFakeClock()
	l := newTestLeases(t, objstore.NewMemory(), clk.Now)
	a := mustAcquire(t, l, "p0", "node-a", "n1")
	clk.Advance(3 * time.Second)
	a, err := l.Renew(context.Background(), "p0", a.Term, a.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	// Exactly expires + margin: still held.
	clk.Advance(DefaultLeaseTTL + DefaultLeaseMargin)
	if _, err := l.Acquire(context.Background(), "p0", "node-b", "n2"); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("at expires+margin: %v", err)
	}
	clk.Advance(time.Millisecond)
	b := mustAcquire(t, l, "p0", "node-b", "n2")
	if b.Term != 2 || b.TickFloor < a.TickMax || b.TickMax <= b.TickFloor {
		t.Fatalf("b %+v after a %+v", b, a)
	}
	// The old holder is out.
	if _, err := l.Renew(context.Background(), "p0", a.Term, a.Nonce); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew by old holder: %v", err)
	}
	if err := l.Release(context.Background(), "p0", a.Term, a.Nonce, 10, a.TickMax); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("release by old holder: %v", err)
	}
}

func TestAcquireAfterRelease(t *testing.T) {
	clk := newFakeClock()
	l := newTestLeases(t, objstore.NewMemory(), clk.Now)
	a := mustAcquire(t, l, "p0", "node-a", "n1")
	clk.Advance(time.Second)
	last := segmentlog.TickOf(clk.Now()) + 17
	if err := l.Release(context.Background(), "p0", a.Term, a.Nonce, 42, last); err != nil {
		t.Fatal(err)
	}
	// Releasing again is harmless.
	if err := l.Release(context.Background(), "p0", a.Term, a.Nonce, 42, last); err != nil {
		t.Fatal(err)
	}
	b := mustAcquire(t, l, "p0", "node-b", "n2")
	if b.Term != 2 || b.TickFloor != last || b.TailHint != 42 {
		t.Fatalf("b %+v, want term 2, floor %d, tail 42", b, last)
	}
	if rec := mustDescribe(t, l, "p0"); rec.Version != 3 {
		t.Fatalf("version %d, want 3 (acquire, release, acquire)", rec.Version)
	}
}

func TestAcquireRetrySameNonce(t *testing.T) {
	clk := newFakeClock()
	l := newTestLeases(t, objstore.NewMemory(), clk.Now)
	mustAcquire(t, l, "p0", "node-a", "n1")
	clk.Advance(time.Hour)
	a := mustAcquire(t, l, "p0", "node-a", "n2") // expired: term 2
	clk.Advance(2 * time.Second)
	again := mustAcquire(t, l, "p0", "node-a", "n2")
	if again.Term != a.Term || again.TickFloor != a.TickFloor || again.TickMax != a.TickMax {
		t.Fatalf("retry %+v, first %+v", again, a)
	}
	// The retry was sent later, yet its deadline is bounded by the record.
	if !again.Deadline.Equal(a.Deadline) {
		t.Fatalf("retry deadline %v, first %v", again.Deadline, a.Deadline)
	}
	if rec := mustDescribe(t, l, "p0"); rec.Version != 2 {
		t.Fatalf("a retry wrote: version %d", rec.Version)
	}
	if _, err := l.Acquire(context.Background(), "p0", "node-b", "n2"); !errors.Is(err, ErrNonceReused) {
		t.Fatalf("nonce reused by another holder: %v", err)
	}
}

func TestRenew(t *testing.T) {
	clk := newFakeClock()
	l := newTestLeases(t, objstore.NewMemory(), clk.Now)
	a := mustAcquire(t, l, "p0", "node-a", "n1")
	before := mustDescribe(t, l, "p0")
	clk.Advance(3 * time.Second)
	r, err := l.Renew(context.Background(), "p0", a.Term, a.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	after := mustDescribe(t, l, "p0")
	if r.Term != a.Term || r.TickFloor != a.TickFloor || r.TickMax <= a.TickMax ||
		!r.Deadline.Equal(clk.Now().Add(DefaultLeaseTTL-DefaultLeaseMargin)) {
		t.Fatalf("renew %+v after %+v", r, a)
	}
	if !after.Expires.After(before.Expires) || after.TTMax != r.TickMax || after.Version != before.Version+1 {
		t.Fatalf("record %+v after %+v", after, before)
	}
	// Late, but nobody took over: still renewable.
	clk.Advance(time.Minute)
	if _, err := l.Renew(context.Background(), "p0", a.Term, a.Nonce); err != nil {
		t.Fatalf("late renew: %v", err)
	}
}

func TestRenewLost(t *testing.T) {
	clk := newFakeClock()
	l := newTestLeases(t, objstore.NewMemory(), clk.Now)
	if _, err := l.Renew(context.Background(), "p0", 1, "n1"); !errors.Is(err, ErrLeaseLost) || !errors.Is(err, ErrNoLease) {
		t.Fatalf("renew without record: %v", err)
	}
	a := mustAcquire(t, l, "p0", "node-a", "n1")
	clk.Advance(DefaultLeaseTTL + DefaultLeaseMargin + time.Millisecond)
	mustAcquire(t, l, "p0", "node-b", "n2")
	if _, err := l.Renew(context.Background(), "p0", a.Term, a.Nonce); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew after takeover: %v", err)
	}
}

func TestReleaseByNonHolder(t *testing.T) {
	clk := newFakeClock()
	l := newTestLeases(t, objstore.NewMemory(), clk.Now)
	a := mustAcquire(t, l, "p0", "node-a", "n1")
	before := mustDescribe(t, l, "p0")
	for _, tc := range []struct {
		term  uint64
		nonce string
	}{{a.Term, "other"}, {a.Term + 1, a.Nonce}, {a.Term - 1, a.Nonce}} {
		if err := l.Release(context.Background(), "p0", tc.term, tc.nonce, 5, 5); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("release by %d/%s: %v", tc.term, tc.nonce, err)
		}
	}
	if after := mustDescribe(t, l, "p0"); after != before {
		t.Fatalf("record changed: %+v", after)
	}
	if err := l.Release(context.Background(), "p1", 1, "n1", 0, 0); !errors.Is(err, ErrLeaseLost) || !errors.Is(err, ErrNoLease) {
		t.Fatalf("release without record: %v", err)
	}
}

func TestDescribeAndList(t *testing.T) {
	clk := newFakeClock()
	store := objstore.NewMemory()
	l := newTestLeases(t, store, clk.Now)
	if _, err := l.Describe(context.Background(), "p0"); !errors.Is(err, ErrNoLease) {
		t.Fatalf("describe: %v", err)
	}
	for _, p := range []string{"p2", "p0", "p1"} {
		mustAcquire(t, l, p, "node-a", "n-"+p)
	}
	// Keys that are not lease records are skipped.
	for _, k := range []string{"cairn/meta/leases/README", "cairn/meta/leases/x/y.json"} {
		if _, err := store.Put(context.Background(), k, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rec := range got {
		names = append(names, rec.PChannel)
	}
	if strings.Join(names, ",") != "p0,p1,p2" {
		t.Fatalf("list = %v", names)
	}
}

func TestInvalidInput(t *testing.T) {
	l := newTestLeases(t, objstore.NewMemory(), newFakeClock().Now)
	ctx := context.Background()
	for _, p := range []string{"", "../x", "a/b", strings.Repeat("p", segmentlog.MaxNameLen+1)} {
		if _, err := l.Acquire(ctx, p, "h", "n"); !errors.Is(err, segmentlog.ErrInvalidName) {
			t.Errorf("acquire %q: %v", p, err)
		}
		if _, err := l.Renew(ctx, p, 1, "n"); !errors.Is(err, segmentlog.ErrInvalidName) {
			t.Errorf("renew %q: %v", p, err)
		}
		if err := l.Release(ctx, p, 1, "n", 0, 0); !errors.Is(err, segmentlog.ErrInvalidName) {
			t.Errorf("release %q: %v", p, err)
		}
		if _, err := l.Describe(ctx, p); !errors.Is(err, segmentlog.ErrInvalidName) {
			t.Errorf("describe %q: %v", p, err)
		}
	}
	if _, err := l.Acquire(ctx, "p0", "h", ""); err == nil {
		t.Error("empty nonce accepted")
	}
	if _, err := l.Acquire(ctx, "p0", "", "n"); err == nil {
		t.Error("empty holder accepted")
	}
}

func TestNewLeasesValidates(t *testing.T) {
	store := objstore.NewMemory()
	for _, tc := range []struct {
		cfg  LeaseConfig
		opts []Option
	}{
		{LeaseConfig{TTL: 10 * time.Second, Margin: 11 * time.Second}, nil},
		{LeaseConfig{TTL: 2 * time.Second}, nil},
		{LeaseConfig{}, []Option{WithRequestTimeout(DefaultLeaseMargin)}},
		{LeaseConfig{}, []Option{WithRequestTimeout(-time.Second)}},
		{LeaseConfig{}, []Option{WithClock(nil)}},
	} {
		if _, err := NewLeases(store, testLayout, tc.cfg, tc.opts...); err == nil {
			t.Errorf("NewLeases(%+v, %d options) accepted", tc.cfg, len(tc.opts))
		}
	}
	if _, err := NewLeases(nil, testLayout, LeaseConfig{}); err == nil {
		t.Error("nil store accepted")
	}
}

func TestCorruptRecord(t *testing.T) {
	store := objstore.NewMemory()
	l := newTestLeases(t, store, newFakeClock().Now)
	if _, err := store.Put(context.Background(), testLayout.Lease("p0"), []byte(`{"format":2,"pchannel":"p0"}`)); err != nil {
		t.Fatal(err)
	}
	_, err := l.Acquire(context.Background(), "p0", "node-a", "n1")
	if err == nil || errors.Is(err, ErrLeaseHeld) || !strings.Contains(err.Error(), "unknown format 2") {
		t.Fatalf("acquire over a format-2 record: %v", err)
	}
}

// TestAcquireRace: of 16 concurrent acquirers of a free pchannel exactly one
// wins; every other one is told the lease is held by the winner.
func TestAcquireRace(t *testing.T) {
	clk := newFakeClock()
	l := newTestLeases(t, objstore.NewMemory(), clk.Now)
	const n = 16
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		grants = make([]segmentlog.LeaseGrant, n)
		errs   = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			grants[i], errs[i] = l.Acquire(context.Background(), "p0", fmt.Sprintf("node-%d", i), fmt.Sprintf("n%d", i))
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("two winners: %d (%+v) and %d (%+v)", winner, grants[winner], i, grants[i])
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no winner: %v", errs)
	}
	if grants[winner].Term != 1 || grants[winner].Nonce != fmt.Sprintf("n%d", winner) {
		t.Fatalf("winner's grant %+v", grants[winner])
	}
	for i, err := range errs {
		var he *HeldError
		if i != winner && (!errors.As(err, &he) || he.Holder != fmt.Sprintf("node-%d", winner) || he.Term != 1 || he.RetryAfter <= 0) {
			t.Fatalf("loser %d: %v", i, err)
		}
	}
}

// lossyStore applies the next few conditional writes (or not, if drop is
// set) and then reports them failed with ErrTransient, as when a reply is
// lost or a request times out after it reached the store.
type lossyStore struct {
	objstore.Store
	mu   sync.Mutex
	fail int  // writes still to fail
	drop bool // fail without applying
}

func (s *lossyStore) failNext(n int, drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.drop = n, drop
}

// take reports whether this write is to fail, and whether to apply it first.
func (s *lossyStore) take() (fail, apply bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail == 0 {
		return false, true
	}
	s.fail--
	return true, !s.drop
}

func (s *lossyStore) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	fail, apply := s.take()
	var etag string
	var err error
	if apply {
		etag, err = s.Store.PutIfAbsent(ctx, key, body, meta)
	}
	if fail && err == nil {
		return "", fmt.Errorf("put-if-absent %s: reply lost: %w", key, objstore.ErrTransient)
	}
	return etag, err
}

func (s *lossyStore) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	fail, apply := s.take()
	var newETag string
	var err error
	if apply {
		newETag, err = s.Store.PutIfMatch(ctx, key, body, etag)
	}
	if fail && err == nil {
		return "", fmt.Errorf("put-if-match %s: reply lost: %w", key, objstore.ErrTransient)
	}
	return newETag, err
}

// TestLostReply: a write that landed but whose reply was lost is recognised
// by reading the record back; the operation succeeds once, with what it wrote.
func TestLostReply(t *testing.T) {
	for _, drop := range []bool{false, true} {
		t.Run(map[bool]string{false: "applied", true: "not applied"}[drop], func(t *testing.T) {
			clk := newFakeClock()
			store := &lossyStore{Store: objstore.NewMemory()}
			l := newTestLeases(t, store, clk.Now)
			ctx := context.Background()

			store.failNext(1, drop)
			a := mustAcquire(t, l, "p0", "node-a", "n1")
			if rec := mustDescribe(t, l, "p0"); a.Term != 1 || rec.Term != 1 || rec.Version != 1 || rec.Nonce != "n1" {
				t.Fatalf("grant %+v, record %+v", a, rec)
			}

			clk.Advance(3 * time.Second)
			store.failNext(1, drop)
			r, err := l.Renew(ctx, "p0", a.Term, a.Nonce)
			if err != nil {
				t.Fatal(err)
			}
			if rec := mustDescribe(t, l, "p0"); rec.Version != 2 || rec.TTMax != r.TickMax || r.Term != 1 {
				t.Fatalf("renew %+v, record %+v", r, rec)
			}

			store.failNext(1, drop)
			if err := l.Release(ctx, "p0", a.Term, a.Nonce, 9, r.TickFloor+1); err != nil {
				t.Fatal(err)
			}
			if rec := mustDescribe(t, l, "p0"); rec.Version != 3 || !rec.Released || rec.Tail != 9 {
				t.Fatalf("record %+v", rec)
			}

			// A second acquirer whose first write is lost gets term 2, not 3.
			store.failNext(1, drop)
			if b := mustAcquire(t, l, "p0", "node-b", "n2"); b.Term != 2 {
				t.Fatalf("term %d", b.Term)
			}
			if rec := mustDescribe(t, l, "p0"); rec.Version != 4 {
				t.Fatalf("version %d", rec.Version)
			}
		})
	}
}

// TestTransientGiveUp: a store that never answers a write is given up on
// after a bounded number of rounds, with the store's error.
func TestTransientGiveUp(t *testing.T) {
	store := &lossyStore{Store: objstore.NewMemory()}
	l := newTestLeases(t, store, newFakeClock().Now)
	store.failNext(1000, true)
	_, err := l.Acquire(context.Background(), "p0", "node-a", "n1")
	if !errors.Is(err, objstore.ErrTransient) || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Acquire(ctx, "p0", "node-a", "n1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
