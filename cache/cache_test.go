package cache

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// val is a test batch that names its own key, so a hit can be checked.
type val struct {
	pchannel string
	offset   uint64
	term     uint64
	payload  []byte
}

func newCache[V any](t testing.TB, cfg Config) *Cache[V] {
	t.Helper()
	c, err := New[V](cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close) // ristretto's goroutines keep an unclosed cache alive
	return c
}

// checkHit fails unless v is exactly what was Put at (p, off) under term.
func checkHit(t testing.TB, p string, off uint64, v val, term uint64) {
	t.Helper()
	if v.pchannel != p || v.offset != off || v.term != term {
		t.Fatalf("Get(%s, %d) = value of (%s, %d, term %d) with term %d", p, off, v.pchannel, v.offset, v.term, term)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero means defaults", Config{}, true},
		{"lambda budget", Config{MaxBytes: DefaultLambdaBytes, Metrics: true}, true},
		{"minimum budget", Config{MaxBytes: MinBytes}, true},
		{"explicit counters", Config{NumCounters: 1000}, true},
		{"negative budget", Config{MaxBytes: -1}, false},
		{"budget below minimum", Config{MaxBytes: MinBytes - 1}, false},
		{"negative counters", Config{NumCounters: -1}, false},
		{"explicit recent layer", Config{MaxBytes: 1 << 20, RecentBytes: 512 << 10, RecentEntries: 8}, true},
		{"recent layer of the default budget", Config{RecentBytes: DefaultLocalBytes - 1}, true},
		{"negative recent bytes", Config{RecentBytes: -1}, false},
		{"recent layer takes the whole budget", Config{MaxBytes: 1 << 20, RecentBytes: 1 << 20}, false},
		{"recent layer above the default budget", Config{RecentBytes: DefaultLocalBytes}, false},
		{"negative recent entries", Config{RecentEntries: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want it to wrap ErrInvalidConfig", err)
			}
			_, err = New[int](tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{"zero", Config{}, Config{MaxBytes: DefaultLocalBytes, NumCounters: DefaultLocalBytes / 4096 * 10,
			RecentBytes: DefaultLocalBytes / 4, RecentEntries: DefaultRecentEntries}},
		{"lambda", Config{MaxBytes: DefaultLambdaBytes}, Config{MaxBytes: DefaultLambdaBytes, NumCounters: DefaultLambdaBytes / 4096 * 10,
			RecentBytes: DefaultLambdaBytes / 4, RecentEntries: DefaultRecentEntries}},
		{"small budget gets the counter floor", Config{MaxBytes: MinBytes}, Config{MaxBytes: MinBytes, NumCounters: 10_000,
			RecentBytes: MinBytes / 4, RecentEntries: DefaultRecentEntries}},
		{"explicit kept", Config{MaxBytes: 1 << 20, NumCounters: 7, RecentBytes: 100_000, RecentEntries: 3, Metrics: true},
			Config{MaxBytes: 1 << 20, NumCounters: 7, RecentBytes: 100_000, RecentEntries: 3, Metrics: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.withDefaults(); got != tt.want {
				t.Fatalf("withDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	c := newCache[val](t, Config{MaxBytes: 1 << 20, Metrics: true})
	want := val{pchannel: "p1", offset: 7, term: 3, payload: []byte("batch")}
	if !c.Put("p1", 7, 3, want, 5) {
		t.Fatal("Put refused")
	}
	c.Wait()
	v, term, ok := c.Get("p1", 7)
	if !ok {
		t.Fatal("Get after Wait missed")
	}
	checkHit(t, "p1", 7, v, term)
	if string(v.payload) != "batch" || term != 3 {
		t.Fatalf("Get = %q term %d, want %q term 3", v.payload, term, "batch")
	}
	for _, k := range []struct {
		p   string
		off uint64
	}{{"p1", 6}, {"p1", 8}, {"p2", 7}, {"", 7}} {
		if _, _, ok := c.Get(k.p, k.off); ok {
			t.Errorf("Get(%q, %d) hit; only (p1, 7) was Put", k.p, k.off)
		}
	}
	// Replacing the entry of a key.
	if !c.Put("p1", 7, 4, val{pchannel: "p1", offset: 7, term: 4}, 5) {
		t.Fatal("second Put refused")
	}
	c.Wait()
	if v, term, ok := c.Get("p1", 7); !ok || term != 4 {
		t.Fatalf("Get after replace = term %d ok %v, want term 4", term, ok)
	} else {
		checkHit(t, "p1", 7, v, term)
	}
	s := c.Stats()
	if s.Hits != 2 || s.Misses != 4 {
		t.Errorf("Stats = %+v, want 2 hits and 4 misses", s)
	}
	if s.Bytes <= 0 || s.Bytes > 1<<20 {
		t.Errorf("Stats.Bytes = %d, want within (0, budget]", s.Bytes)
	}
}

// TestNoWrongKey churns a tiny cache (many evictions and rejections) over
// several rounds that rewrite the same offsets with new terms, from several
// goroutines, and checks that every hit is exactly the value Put at that key.
func TestNoWrongKey(t *testing.T) {
	const (
		rounds   = 4
		offsets  = 3000
		channels = 3
	)
	run := func(t *testing.T, c *Cache[val]) {
		var wg sync.WaitGroup
		for ch := range channels {
			p := fmt.Sprintf("pchannel-%d", ch)
			wg.Go(func() {
				for r := range uint64(rounds) {
					term := r + 1
					for off := range uint64(offsets) {
						c.Put(p, off, term, val{pchannel: p, offset: off, term: term}, 200)
						// Read this channel's and a neighbour's recent keys.
						for _, q := range []string{p, fmt.Sprintf("pchannel-%d", (ch+1)%channels)} {
							back := off - off%16
							if v, term, ok := c.Get(q, back); ok {
								checkHit(t, q, back, v, term)
							}
						}
					}
				}
			})
		}
		wg.Wait()
		c.Wait()
		hits := 0
		for ch := range channels {
			p := fmt.Sprintf("pchannel-%d", ch)
			for off := range uint64(offsets) {
				if v, term, ok := c.Get(p, off); ok {
					checkHit(t, p, off, v, term)
					hits++
				}
			}
		}
		s := c.Stats()
		t.Logf("final hits %d of %d, stats %+v", hits, channels*offsets, s)
		if s.Evictions == 0 && s.Rejected == 0 {
			t.Errorf("no eviction or rejection: the budget is not tiny enough to test anything")
		}
		if s.Bytes > MinBytes {
			t.Errorf("Stats.Bytes = %d, above the budget %d", s.Bytes, MinBytes)
		}
	}
	t.Run("real hash", func(t *testing.T) {
		run(t, newCache[val](t, Config{MaxBytes: MinBytes, Metrics: true}))
	})
	t.Run("forced collisions", func(t *testing.T) {
		c := newCache[val](t, Config{MaxBytes: MinBytes, Metrics: true})
		// Every key lands in one of 64 slots: the cache must tell keys apart
		// by the full key kept in the entry, not by ristretto's hash.
		c.hash = func(p string, off uint64) uint64 { return c.key(p, off%64) }
		run(t, c)
		if c.stale.Load() == 0 {
			t.Errorf("no key mismatch was met: the collision path went untested")
		}
	})
}

func TestDropTerm(t *testing.T) {
	c := newCache[val](t, Config{MaxBytes: 1 << 20})
	put := func(p string, off, term uint64) bool {
		return c.Put(p, off, term, val{pchannel: p, offset: off, term: term}, 100)
	}
	get := func(p string, off uint64) (uint64, bool) {
		v, term, ok := c.Get(p, off)
		if ok {
			checkHit(t, p, off, v, term)
		}
		return term, ok
	}
	put("p", 0, 1)
	put("p", 1, 1)
	put("p", 2, 2)
	put("q", 0, 1)
	c.Wait()
	before := c.Stats().Bytes

	c.DropTerm("p", 1)
	for _, off := range []uint64{0, 1} {
		if _, ok := get("p", off); ok {
			t.Errorf("Get(p, %d) of dropped term 1 hit", off)
		}
	}
	if term, ok := get("p", 2); !ok || term != 2 {
		t.Errorf("Get(p, 2) = term %d ok %v, want term 2 still served", term, ok)
	}
	if term, ok := get("q", 0); !ok || term != 1 {
		t.Errorf("Get(q, 0) = term %d ok %v, want another pchannel untouched", term, ok)
	}
	if put("p", 3, 1) {
		t.Errorf("Put of dropped term 1 accepted")
	}
	if !put("p", 3, 3) {
		t.Errorf("Put of newer term 3 refused")
	}
	c.DropTerm("p", 0) // lower than the floor: no-op
	c.Wait()
	if term, ok := get("p", 3); !ok || term != 3 {
		t.Errorf("Get(p, 3) = term %d ok %v, want term 3", term, ok)
	}
	if _, ok := get("p", 0); ok {
		t.Errorf("a lower DropTerm brought dropped term 1 back")
	}
	// The two Gets that met dropped entries deleted them.
	if after := c.Stats().Bytes; after >= before {
		t.Errorf("Bytes %d → %d: dropped entries were not freed on Get", before, after)
	}

	// An entry of a dropped term that reaches ristretto after DropTerm (Put
	// raced with it) is still hidden.
	c.Put("r", 0, 5, val{pchannel: "r", offset: 0, term: 5}, 100)
	c.DropTerm("r", 5)
	c.Wait()
	if _, ok := get("r", 0); ok {
		t.Errorf("entry Put just before DropTerm was served")
	}
	if !put("r", 0, 6) {
		t.Errorf("Put of term 6 after DropTerm(5) refused")
	}
}

func TestPutRefused(t *testing.T) {
	c := newCache[[]byte](t, Config{MaxBytes: MinBytes})
	tests := []struct {
		name string
		cost int64
	}{
		{"larger than the budget", MinBytes + 1},
		{"exactly the budget (no room for overhead)", MinBytes},
		{"negative cost", -1},
	}
	for i, tt := range tests {
		if c.Put("p", uint64(i), 1, nil, tt.cost) {
			t.Errorf("%s: Put(cost %d) accepted", tt.name, tt.cost)
		}
	}
	if got := c.Stats().Rejected; got != int64(len(tests)) {
		t.Errorf("Stats.Rejected = %d, want %d", got, len(tests))
	}
	// The largest entry fits the larger of the two layers: with the
	// default split, ristretto's three quarters of the budget.
	largest := c.Largest()
	if want := MinBytes - MinBytes/4 - c.overhead; largest != want {
		t.Fatalf("Largest() = %d, want %d", largest, want)
	}
	if c.Put("p", 101, 1, make([]byte, largest+1), largest+1) {
		t.Errorf("Put(cost Largest()+1) accepted")
	}
	if !c.Put("p", 100, 1, make([]byte, largest), largest) {
		t.Fatalf("Put of the largest entry that fits (cost %d) refused", largest)
	}
	c.Wait()
	if _, _, ok := c.Get("p", 100); !ok {
		t.Errorf("largest entry not cached")
	}
	if s := c.Stats(); s.Bytes != MinBytes-MinBytes/4 {
		t.Errorf("Stats.Bytes = %d, want exactly ristretto's share %d", s.Bytes, MinBytes-MinBytes/4)
	}
}

// TestMemoryBudget writes 100 × the budget through a 16 MiB cache and checks
// both the cache's accounting and the Go heap.
func TestMemoryBudget(t *testing.T) {
	const budget = 16 << 20
	heapInuse := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	base := heapInuse()
	c := newCache[[]byte](t, Config{MaxBytes: budget, Metrics: true})
	var written int64
	for i := uint64(0); written < 100*budget; i++ {
		size := int64(1<<10 + (i*7919)%(31<<10)) // 1–32 KiB
		if c.Put(fmt.Sprintf("p%d", i%4), i, 1, make([]byte, size), size) {
			written += size
		}
		if i%1024 == 0 {
			// Entries queued in ristretto's set buffer are outside the
			// budget; draining it now and then keeps this test's peak
			// memory modest on a shared machine.
			c.Wait()
		}
	}
	c.Wait()
	s := c.Stats()
	if s.Bytes > budget {
		t.Errorf("Stats.Bytes = %d, above the budget %d", s.Bytes, budget)
	}
	if s.Evictions == 0 {
		t.Errorf("no evictions after writing 100 × the budget: %+v", s)
	}
	grown := int64(heapInuse()) - int64(base)
	const limit = 3*budget + 8<<20
	t.Logf("wrote %d MiB; stats %+v; heap in use grew by %.1f MiB (limit %d MiB)",
		written>>20, s, float64(grown)/(1<<20), limit>>20)
	if grown > limit {
		t.Errorf("heap in use grew by %d bytes, above %d", grown, limit)
	}
	runtime.KeepAlive(c)
}

func TestClose(t *testing.T) {
	c := newCache[int](t, Config{MaxBytes: MinBytes, Metrics: true})
	c.Put("p", 1, 1, 1, 10)
	c.Wait()
	if _, _, ok := c.Get("p", 1); !ok {
		t.Fatal("Get before Close missed")
	}
	c.Close()
	c.Close() // idempotent
	if c.Put("p", 2, 1, 2, 10) {
		t.Errorf("Put after Close accepted")
	}
	if _, _, ok := c.Get("p", 1); ok {
		t.Errorf("Get after Close hit")
	}
	c.Wait() // returns at once
	c.DropTerm("p", 1)
	// The counters as Close found them; clearing the cache is no eviction.
	if s := c.Stats(); s != (Stats{Hits: 1}) {
		t.Errorf("Stats after Close = %+v, want %+v", s, Stats{Hits: 1})
	}
}

// TestCloseWhileBusy closes the cache under concurrent Put, Get (some of them
// deleting dropped entries), DropTerm, Wait and Stats: nothing may panic.
func TestCloseWhileBusy(t *testing.T) {
	c, err := New[int](Config{MaxBytes: MinBytes, Metrics: true})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := uint64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf("p%d", g)
				c.Put(p, i, i/100+1, int(i), 64)
				c.Get(p, i-i%50)
				if i%100 == 0 {
					c.DropTerm(p, i/100)
					c.Stats()
				}
				if i%500 == 0 {
					c.Wait()
				}
			}
		})
	}
	for range 2000 {
		runtime.Gosched()
	}
	c.Close()
	close(stop)
	wg.Wait()
}

func BenchmarkGetHit(b *testing.B) {
	c := newCache[[]byte](b, Config{MaxBytes: 64 << 20})
	const n = 1024
	for i := range uint64(n) {
		c.Put("bench-pchannel", i, 1, make([]byte, 1024), 1024)
	}
	c.Wait()
	for i := range uint64(n) {
		if _, _, ok := c.Get("bench-pchannel", i); !ok {
			b.Fatalf("offset %d not cached", i)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var i uint64
		for pb.Next() {
			c.Get("bench-pchannel", i%n)
			i++
		}
	})
}

func BenchmarkPut(b *testing.B) {
	c := newCache[[]byte](b, Config{MaxBytes: 64 << 20})
	v := make([]byte, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range uint64(b.N) {
		c.Put("bench-pchannel", i, 1, v, int64(len(v)))
	}
	c.Wait()
}
