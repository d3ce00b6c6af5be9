package segmentlog_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/cache"
	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// Tail reading (issue #4): an in-process reader follows the writer through
// the cache and the Tail without any store request; a reader in another
// process long-polls the next slot with bounded backoff; the cache never
// serves a wrong batch.

// countingStore counts the requests sent through it, per operation, and
// the GETs of WAL slots (keys under walPrefix) apart. Give each actor its
// own countingStore over one shared store to tell their requests apart.
type countingStore struct {
	objstore.Store
	walPrefix string

	gets, walGets, heads, lists, puts, deletes atomic.Int64
}

func newCountingStore(base objstore.Store, layout sl.Layout, pch string) *countingStore {
	s := &countingStore{walPrefix: layout.WALPrefix(pch)}
	s.Store = objstore.Observe(base, s.count)
	return s
}

// requests is every request sent so far.
func (s *countingStore) requests() int64 {
	return s.gets.Load() + s.heads.Load() + s.lists.Load() + s.puts.Load() + s.deletes.Load()
}

func (s *countingStore) count(r objstore.Request) {
	switch r.Op {
	case objstore.OpGet, objstore.OpGetIfNoneMatch, objstore.OpGetRange:
		s.gets.Add(1)
		if strings.HasPrefix(r.Key, s.walPrefix) {
			s.walGets.Add(1)
		}
	case objstore.OpHead:
		s.heads.Add(1)
	case objstore.OpList:
		s.lists.Add(1)
	case objstore.OpPutIfAbsent, objstore.OpPutIfMatch, objstore.OpPut:
		s.puts.Add(1)
	case objstore.OpDelete:
		s.deletes.Add(1)
	}
}

// parkedTail wraps the Tail a scanner waits on and hands the test, on
// parked, the offset each Wait call waits for, before it waits: from then
// until the Tail wakes it, the scanner sends nothing to the store.
type parkedTail struct {
	*cache.Tail
	parked chan uint64
}

func (p *parkedTail) Wait(ctx context.Context, pch string, after uint64) (uint64, error) {
	select {
	case p.parked <- after:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return p.Tail.Wait(ctx, pch, after)
}

// openTailWriter opens a writer with the default lease timing (TTL 10 s,
// renew every 3 s) and 1 s request timeouts: these tests are about reading,
// and a writer whose lease lapses on a loaded machine would only add noise.
func openTailWriter(tb testing.TB, store objstore.Store, pch string, mod func(*sl.WriterConfig)) *sl.Writer {
	tb.Helper()
	leases, err := coordinator.NewLeases(store, testLayout, coordinator.LeaseConfig{}, coordinator.WithRequestTimeout(time.Second))
	if err != nil {
		tb.Fatal(err)
	}
	cfg := sl.WriterConfig{PChannel: pch, Layout: testLayout, Holder: "tail-test", Logger: quietLog,
		PutTimeout: time.Second, GetTimeout: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	w, err := sl.OpenWriter(context.Background(), cfg, store, leases)
	if err != nil {
		tb.Fatalf("open writer %s: %v", pch, err)
	}
	return w
}

func newBatchCache(tb testing.TB, cfg cache.Config) *cache.Cache[*sl.Batch] {
	tb.Helper()
	c, err := cache.New[*sl.Batch](cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// delivered is what a scanner goroutine hands to the test.
type delivered struct {
	d    sl.Delivery
	err  error
	reqs int64 // the scanner's store requests so far, when Next returned
}

// follow runs sc.Next in a goroutine until stop is called or Next fails,
// sending every delivery (and the final error) on the returned channel,
// with the count of store requests st had seen when Next returned (st may
// be nil). stop returns once the goroutine has left the scanner (a Scanner
// is not safe for concurrent use: read its Stats only after stop).
func follow(ctx context.Context, sc *sl.Scanner, st *countingStore) (_ <-chan delivered, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan delivered, 4096)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			d, err := sc.Next(ctx)
			r := delivered{d: d, err: err}
			if st != nil {
				r.reqs = st.requests()
			}
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return out, func() { cancel(); <-exited }
}

func receive(t testing.TB, ch <-chan delivered, within time.Duration) sl.Delivery {
	t.Helper()
	return receiveCounted(t, ch, within).d
}

func receiveCounted(t testing.TB, ch <-chan delivered, within time.Duration) delivered {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("scanner stopped")
		}
		if r.err != nil {
			t.Fatalf("scanner: %v", r.err)
		}
		return r
	case <-time.After(within):
		t.Fatalf("nothing delivered within %v", within)
	}
	return delivered{}
}

// TestTailInProcessNoStoreRead: a scanner waiting at the tail with the
// writer's Cache and Tail is woken by each append and delivers it from the
// cache, without sending the store a single request in between.
func TestTailInProcessNoStoreRead(t *testing.T) {
	st, cs := followInProcess(t, 200)
	if st.CacheHits != st.Batches {
		t.Errorf("scanner stats %+v: want every batch from the cache", st)
	}
	t.Logf("scanner stats %+v; cache stats %+v", st, cs)
}

// TestTailHitRatio: a reader following the writer in the same process hits
// the cache for at least 99% of the batches it delivers over 2,000 appends.
func TestTailHitRatio(t *testing.T) {
	st, cs := followInProcess(t, 2000)
	ratio := float64(st.CacheHits) / float64(st.Batches)
	t.Logf("hit ratio %.2f%% over %d batches; scanner stats %+v; cache stats %+v", 100*ratio, st.Batches, st, cs)
	if ratio < 0.99 {
		t.Errorf("hit ratio %.4f, want ≥ 0.99", ratio)
	}
}

// followInProcess appends n batches one by one, each once a scanner with
// the writer's Cache and Tail waits for it at the tail, and checks that the
// scanner delivers each with no store request between the append and the
// delivery. Only the scanner's requests are counted: the writer talks to
// the store directly.
func followInProcess(t *testing.T, n int) (sl.ScannerStats, cache.Stats) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := objstore.NewMemory()
	c := newBatchCache(t, cache.Config{MaxBytes: cache.DefaultLambdaBytes, Metrics: true})
	tail := &cache.Tail{}
	w := openTailWriter(t, base, "p1", func(cfg *sl.WriterConfig) {
		cfg.Cache, cfg.Tail = c, tail
		// No timetick batch: one persisted during a stall of the machine
		// would take the slot the scanner was seen waiting for.
		cfg.TimeTickInterval = -1
	})
	defer w.Close(ctx)

	rstore := newCountingStore(base, testLayout, "p1")
	pt := &parkedTail{Tail: tail, parked: make(chan uint64)}
	sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: "p1", Layout: testLayout, From: sl.Latest(), Cache: c, Tail: pt}, rstore)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	out, stop := follow(ctx, sc, rstore)
	defer stop()

	var atTail, last int64 // requests when the scanner first waited at the tail, and at the last delivery
	for i := range n {
		var at uint64
		select {
		case at = <-pt.parked:
		case <-time.After(10 * time.Second):
			t.Fatalf("append %d: the scanner never waited at the tail", i)
		}
		before := rstore.requests()
		if i == 0 {
			atTail = before
		}
		acks, err := w.Append(ctx, dataMsg("v", fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		if acks[0].ID.Offset != at {
			t.Fatalf("append %d landed at %d, the scanner waits for %d", i, acks[0].ID.Offset, at)
		}
		r := receiveCounted(t, out, 10*time.Second)
		if r.d.ID != acks[0].ID || string(r.d.Payload) != fmt.Sprint(i) {
			t.Fatalf("append %d: delivered %v %q, acked %v", i, r.d.ID, r.d.Payload, acks[0].ID)
		}
		if got := r.reqs - before; got != 0 {
			t.Fatalf("append %d: the scanner sent %d store requests between the append and its delivery, want 0", i, got)
		}
		last = r.reqs
	}
	stop()
	st := sc.Stats()
	if st.Batches != int64(n) {
		t.Fatalf("scanner delivered %d batches, want %d", st.Batches, n)
	}
	// Not asserted: what the scanner sends between a delivery and waiting
	// for the next append (today one GET of the empty next slot and one of
	// the checkpoint; zero once it asks the Tail before the store).
	t.Logf("store requests from the first wait at the tail to the last delivery: %d for %d batches (%d WAL GETs in all)",
		last-atTail, n, rstore.walGets.Load())
	return st, c.Stats()
}

// TestTailLongPollIdle: a reader with no in-process writer (as in another
// process) waits at the tail by probing the next slot with backoff up to
// PollMax. Idle, each probe is one GET of that slot and nothing else (no
// LIST), so it costs about 1/PollMax requests a second (4/s with the
// default 250 ms); an append is delivered at the next probe. The test
// counts probes, not seconds: the rate is logged, not asserted.
func TestTailLongPollIdle(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := objstore.NewMemory()
	// No data yet, so the writer persists no timetick batch either: the
	// pchannel is idle from the start.
	w := openTailWriter(t, base, "p1", nil)
	defer w.Close(ctx)
	rstore := newCountingStore(base, testLayout, "p1")
	sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: "p1", Layout: testLayout, From: sl.Latest()}, rstore)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	out, stop := follow(ctx, sc, nil)
	defer stop()

	// The backoff reaches PollMax (250 ms) after 7 probes (5+10+…+160 ms);
	// finding the tail read a few slots before them.
	probesOf := func(n int64) func() bool {
		from := rstore.walGets.Load()
		return func() bool { return rstore.walGets.Load() >= from+n }
	}
	testkit.Eventually(t, 20*time.Second, "the backoff reaches PollMax", probesOf(10))
	const probes = 12
	before, start := rstore.requests(), time.Now()
	testkit.Eventually(t, 30*time.Second, "12 probes at PollMax", probesOf(probes))
	reqs, elapsed := rstore.requests()-before, time.Since(start)
	t.Logf("idle long-polling reader: %d requests in %v = %.2f/s (gets %d, WAL gets %d, heads %d, lists %d)",
		reqs, elapsed.Round(time.Millisecond), float64(reqs)/elapsed.Seconds(), rstore.gets.Load(), rstore.walGets.Load(), rstore.heads.Load(), rstore.lists.Load())
	// One request per probe; a probe may be under way at either end.
	if reqs > probes+1 {
		t.Errorf("idle long-polling reader sent %d requests over %d probes of the next slot, want one each", reqs, probes)
	}
	if n := rstore.lists.Load(); n != 0 {
		t.Errorf("the long-polling reader sent %d LIST requests, want none", n)
	}
	select {
	case r := <-out:
		t.Fatalf("delivered while idle: %+v", r)
	default:
	}

	acks, err := w.Append(ctx, dataMsg("v", "wake"))
	if err != nil {
		t.Fatal(err)
	}
	acked := time.Now()
	// Expected within PollMax plus a GET; only delivery is asserted.
	d := receive(t, out, 10*time.Second)
	if d.ID != acks[0].ID || string(d.Payload) != "wake" {
		t.Fatalf("delivered %v %q, want %v \"wake\"", d.ID, d.Payload, acks[0].ID)
	}
	t.Logf("append delivered %v after its ack (PollMax 250ms)", time.Since(acked).Round(time.Millisecond))
}

// TestTailCacheNeverWrong runs many appends of varied sizes through a writer
// whose cache is far too small for them (constant eviction and overflow),
// with a failover in the middle that drops the first term's entries, and
// checks that readers served through that cache deliver exactly what was
// acked: every message, once, in order, with its bytes.
func TestTailCacheNeverWrong(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := objstore.NewMemory()
	c := newBatchCache(t, cache.Config{MaxBytes: cache.MinBytes, Metrics: true})
	tail := &cache.Tail{}

	type ackedMsg struct {
		payload []byte
		tick    uint64
	}
	var (
		mu    sync.Mutex
		acked = map[sl.MessageID]ackedMsg{}
	)
	appendAll := func(w *sl.Writer, from, n int) {
		t.Helper()
		var wg sync.WaitGroup
		var failed atomic.Bool
		for g := range 4 {
			wg.Go(func() {
				for i := from + g; i < from+n; i += 4 {
					// 16 B to ~6 KiB: group commit makes batches of many sizes,
					// some larger than the recent layer (16 KiB of 64 KiB).
					p := bytes.Repeat([]byte{byte(i)}, 16+(i*7919)%6000)
					copy(p, fmt.Sprintf("m%d.", i))
					acks, err := w.Append(ctx, sl.Message{Type: sl.TypeData, VChannel: "v", Payload: p})
					if err != nil {
						t.Errorf("append %d: %v", i, err)
						failed.Store(true)
						return
					}
					mu.Lock()
					acked[acks[0].ID] = ackedMsg{p, acks[0].TimeTick}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if failed.Load() {
			t.FailNow()
		}
	}
	check := func(name string, got []sl.Delivery) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(got) != len(acked) {
			t.Errorf("%s: %d messages delivered, %d acked", name, len(got), len(acked))
		}
		for i, d := range got {
			a, ok := acked[d.ID]
			switch {
			case !ok:
				t.Fatalf("%s: delivered %v, never acked", name, d.ID)
			case !bytes.Equal(d.Payload, a.payload) || d.TimeTick != a.tick:
				t.Fatalf("%s: %v delivered %d bytes %.12q tick %d, acked %d bytes %.12q tick %d",
					name, d.ID, len(d.Payload), d.Payload, d.TimeTick, len(a.payload), a.payload, a.tick)
			case i > 0 && !got[i-1].ID.Less(d.ID):
				t.Fatalf("%s: %v delivered after %v", name, d.ID, got[i-1].ID)
			}
		}
	}
	scan := func(name string, from sl.Position, tl sl.TailWaiter) *sl.Scanner {
		sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: "p1", Layout: testLayout, From: from, Cache: c, Tail: tl}, base)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(sc.Close)
		return sc
	}

	// A reader follows the tail through both terms meanwhile.
	w1 := openTailWriter(t, base, "p1", func(cfg *sl.WriterConfig) { cfg.Cache, cfg.Tail = c, tail })
	live := scan("live reader", sl.Earliest(), tail)
	liveOut, stopLive := follow(ctx, live, nil)

	const first, second = 1500, 500
	appendAll(w1, 0, first)
	if err := w1.Close(ctx); err != nil { // drops term 1's cache entries
		t.Fatal(err)
	}
	w2 := openTailWriter(t, base, "p1", func(cfg *sl.WriterConfig) { cfg.Cache, cfg.Tail = c, tail })
	defer w2.Close(ctx)
	appendAll(w2, first, second)

	var liveGot []sl.Delivery
	for len(liveGot) < first+second {
		liveGot = append(liveGot, receive(t, liveOut, 10*time.Second))
	}
	stopLive()
	check("live reader", liveGot)

	// Two readers from the start, one after the other, through the cache
	// (term 2's recent batches hit it, the rest is read from the store).
	// One context for the whole scan: read-ahead runs under the context of
	// the Next call that started it.
	for _, name := range []string{"reader 1", "reader 2"} {
		sc := scan(name, sl.Earliest(), nil)
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		var got []sl.Delivery
		for len(got) < first+second {
			d, err := sc.Next(sctx)
			if err != nil {
				t.Fatalf("%s after %d messages: %v", name, len(got), err)
			}
			got = append(got, d)
		}
		cancel()
		check(name, got)
		t.Logf("%s: %+v", name, sc.Stats())
	}
	cs := c.Stats()
	t.Logf("live reader %+v; cache %+v", live.Stats(), cs)
	if live.Stats().CacheHits == 0 {
		t.Errorf("the live reader never hit the cache: nothing was tested")
	}
	if cs.Evictions+cs.Rejected == 0 {
		t.Errorf("the cache neither evicted nor rejected: its budget is not small enough to test anything")
	}
	if cs.Bytes > cache.MinBytes {
		t.Errorf("cache holds %d bytes, above its budget %d", cs.Bytes, cache.MinBytes)
	}
}
