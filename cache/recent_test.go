package cache

import (
	"fmt"
	"sync"
	"testing"
)

// putVal puts a val naming its own key, of the given cost.
func putVal(c *Cache[val], p string, off, term uint64, cost int64) bool {
	return c.Put(p, off, term, val{pchannel: p, offset: off, term: term}, cost)
}

// recentLen returns how many entries of p the recent layer holds.
func recentLen[V any](c *Cache[V], p string) int {
	c.recentMu.RLock()
	defer c.recentMu.RUnlock()
	if ch, ok := c.recent.channels[p]; ok {
		return ch.n
	}
	return 0
}

func recentBytes[V any](c *Cache[V]) int64 {
	c.recentMu.RLock()
	defer c.recentMu.RUnlock()
	return c.recent.bytes
}

// TestRecentVisibleAtOnce is the tail reader's case: every batch is read
// right after it is Put, with no Wait, while ristretto is full of entries
// that were read (so its admission policy favours them over new ones).
// Every Get must hit.
func TestRecentVisibleAtOnce(t *testing.T) {
	c := newCache[val](t, Config{MaxBytes: 1 << 20, Metrics: true})
	// Fill ristretto and make its entries look popular.
	const warm = 2000
	for off := range uint64(warm) {
		putVal(c, "p", off, 1, 1000)
	}
	c.Wait()
	for range 3 {
		for off := range uint64(warm) {
			c.Get("p", off)
		}
	}
	before := c.Stats()
	const n = 5000
	for off := uint64(warm); off < warm+n; off++ {
		if !putVal(c, "p", off, 1, 1000) {
			t.Fatalf("Put(%d) refused", off)
		}
		v, term, ok := c.Get("p", off)
		if !ok {
			t.Fatalf("Get(%d) right after Put missed", off)
		}
		checkHit(t, "p", off, v, term)
	}
	after := c.Stats()
	if hits := after.Hits - before.Hits; hits != n {
		t.Errorf("%d hits counted for %d hits in the recent layer", hits, n)
	}
	t.Logf("stats %+v", after)
	if after.Rejected+after.Evictions == 0 {
		t.Errorf("ristretto neither rejected nor evicted: the test did not fill the cache")
	}
}

// TestRecentOverflowToRistretto checks the bound per pchannel and that what
// overflows the recent layer stays cached in ristretto.
func TestRecentOverflowToRistretto(t *testing.T) {
	c := newCache[val](t, Config{MaxBytes: 4 << 20, RecentEntries: 8, Metrics: true})
	for off := range uint64(100) {
		putVal(c, "p", off, 1, 500)
		putVal(c, "q", off, 1, 500)
		if got := recentLen(c, "p"); got > 8 {
			t.Fatalf("recent layer holds %d entries of p, above RecentEntries 8", got)
		}
	}
	if got := recentLen(c, "p"); got != 8 {
		t.Fatalf("recent layer holds %d entries of p, want 8", got)
	}
	c.Wait() // what overflowed is now applied in ristretto
	for _, p := range []string{"p", "q"} {
		for off := range uint64(100) {
			v, term, ok := c.Get(p, off)
			if !ok {
				t.Fatalf("Get(%s, %d) missed: room for everything, yet not cached", p, off)
			}
			checkHit(t, p, off, v, term)
		}
	}
	s := c.Stats()
	if want := 200 * (500 + c.overhead); s.Bytes != want {
		t.Errorf("Stats.Bytes = %d, want %d (both layers)", s.Bytes, want)
	}
	if s.Hits != 200 || s.Misses != 0 || s.Evictions != 0 || s.Rejected != 0 {
		t.Errorf("Stats = %+v, want 200 hits and nothing else", s)
	}
}

// TestRecentBytes checks the byte bound of the recent layer over all
// pchannels: the oldest entries, whichever pchannel they belong to, move
// on first.
func TestRecentBytes(t *testing.T) {
	const cost = 1000
	c := newCache[val](t, Config{MaxBytes: 1 << 20, RecentBytes: 64 << 10})
	per := cost + c.overhead
	fit := int((64 << 10) / per)
	for i := range uint64(10 * fit) {
		p := fmt.Sprintf("p%d", i%3)
		putVal(c, p, i/3, 1, cost)
		if b := recentBytes(c); b > 64<<10 {
			t.Fatalf("after %d Puts the recent layer holds %d bytes, above RecentBytes %d", i+1, b, 64<<10)
		}
	}
	total := 0
	for i := range 3 {
		total += recentLen(c, fmt.Sprintf("p%d", i))
	}
	if total != fit {
		t.Errorf("recent layer holds %d entries, want the %d that fit", total, fit)
	}
	// The newest fit entries are exactly the recent ones.
	c.recentMu.RLock()
	for i := uint64(10*fit - fit); i < uint64(10*fit); i++ {
		p := fmt.Sprintf("p%d", i%3)
		if _, ok := c.recent.index[recentKey{p, i / 3}]; !ok {
			t.Errorf("Put %d (%s, %d) is among the newest but not in the recent layer", i, p, i/3)
		}
	}
	c.recentMu.RUnlock()

	// An entry larger than the recent layer goes straight to ristretto.
	big := int64(100 << 10)
	if !putVal(c, "big", 0, 1, big) {
		t.Fatalf("Put of %d bytes, too large for the recent layer but not for ristretto, refused", big)
	}
	if recentLen(c, "big") != 0 {
		t.Errorf("an entry larger than RecentBytes entered the recent layer")
	}
	c.Wait()
	if v, term, ok := c.Get("big", 0); !ok {
		t.Errorf("large entry not cached in ristretto")
	} else {
		checkHit(t, "big", 0, v, term)
	}
}

// TestRecentDropTerm: DropTerm frees the recent layer's entries of the
// dropped terms at once, keeps newer terms, and an entry of a dropped term
// never reaches ristretto.
func TestRecentDropTerm(t *testing.T) {
	c := newCache[val](t, Config{MaxBytes: 1 << 20, RecentEntries: 4, Metrics: true})
	// Offsets 0..5 of term 1: 0 and 1 overflowed to ristretto.
	for off := range uint64(6) {
		putVal(c, "p", off, 1, 100)
	}
	putVal(c, "q", 0, 1, 100)
	c.Wait()
	before := recentBytes(c)
	c.DropTerm("p", 1)
	if n := recentLen(c, "p"); n != 0 {
		t.Errorf("%d entries of p left in the recent layer after DropTerm", n)
	}
	if got, want := recentBytes(c), before-4*(100+c.overhead); got != want {
		t.Errorf("recent layer holds %d bytes after DropTerm, want %d", got, want)
	}
	for off := range uint64(6) {
		if _, _, ok := c.Get("p", off); ok {
			t.Errorf("Get(p, %d) of dropped term 1 hit", off)
		}
	}
	if v, term, ok := c.Get("q", 0); !ok {
		t.Errorf("another pchannel's entry was dropped")
	} else {
		checkHit(t, "q", 0, v, term)
	}
	// Term 2 follows; then terms 2 and 3 mixed in the recent layer, and
	// DropTerm(2) keeps 3.
	putVal(c, "p", 6, 2, 100)
	putVal(c, "p", 7, 2, 100)
	putVal(c, "p", 8, 3, 100)
	c.DropTerm("p", 2)
	if n := recentLen(c, "p"); n != 1 {
		t.Errorf("%d entries of p in the recent layer, want only term 3's", n)
	}
	if v, term, ok := c.Get("p", 8); !ok || term != 3 {
		t.Errorf("Get(p, 8) = term %d, ok %v; want term 3", term, ok)
	} else {
		checkHit(t, "p", 8, v, term)
	}
	// Pushing term 3's entry out hands it to ristretto; nothing of the
	// dropped terms goes with it.
	for off := uint64(9); off < 20; off++ {
		putVal(c, "p", off, 3, 100)
	}
	c.Wait()
	for off := range uint64(20) {
		v, term, ok := c.Get("p", off)
		switch {
		case off < 8 && ok:
			t.Errorf("Get(p, %d) of a dropped term hit (term %d)", off, term)
		case off >= 8 && !ok:
			t.Errorf("Get(p, %d) of term 3 missed", off)
		case ok:
			checkHit(t, "p", off, v, term)
		}
	}
	// A Put that raced with DropTerm is refused, and a Get that finds an
	// entry of a dropped term in the recent layer misses.
	if putVal(c, "p", 20, 3, 100) {
		c.DropTerm("p", 3)
		if _, _, ok := c.Get("p", 20); ok {
			t.Errorf("entry of term 3 served after DropTerm(3)")
		}
	}
}

// TestRecentReplace rewrites keys whose older entries ristretto holds or
// still has queued: a Get must never return the older one. (A WAL writer
// never rewrites an offset; the cache stays correct if a caller does.)
func TestRecentReplace(t *testing.T) {
	c := newCache[val](t, Config{MaxBytes: 1 << 20, RecentEntries: 1})
	for off := range uint64(2000) {
		putVal(c, "p", off, 1, 100) // term 1 at off
		putVal(c, "x", off, 1, 100) // x's recent layer: off; p's: off
		putVal(c, "p", off+1, 1, 100)
		// p@off was handed to ristretto (maybe still queued); rewrite it.
		putVal(c, "p", off, 2, 100)
		if v, term, ok := c.Get("p", off); !ok || term != 2 {
			t.Fatalf("Get(p, %d) right after its rewrite = term %d, ok %v; want term 2", off, term, ok)
		} else {
			checkHit(t, "p", off, v, term)
		}
		// Push the rewrite out to ristretto too.
		putVal(c, "p", off+1, 2, 100)
		if v, term, ok := c.Get("p", off); ok {
			checkHit(t, "p", off, v, term)
			if term != 2 {
				t.Fatalf("Get(p, %d) = term %d after it was rewritten with term 2", off, term)
			}
		}
	}
}

// TestRecentConcurrent runs writers, readers and DropTerm against a small
// cache and checks every hit and the budget of the recent layer.
func TestRecentConcurrent(t *testing.T) {
	c := newCache[val](t, Config{MaxBytes: 256 << 10, RecentEntries: 16, Metrics: true})
	var wg sync.WaitGroup
	for g := range 4 {
		p := fmt.Sprintf("p%d", g)
		wg.Go(func() {
			for off := range uint64(5000) {
				term := off/1000 + 1
				putVal(c, p, off, term, int64(100+off%2000))
				if off%1000 == 999 {
					c.DropTerm(p, term)
				}
			}
		})
		wg.Go(func() {
			for i := range uint64(20000) {
				off := i / 4
				if v, term, ok := c.Get(p, off); ok {
					checkHit(t, p, off, v, term)
					if term <= off/1000 {
						t.Errorf("Get(%s, %d) = entry of term %d", p, off, term)
					}
				}
				if b := recentBytes(c); b > c.recentMax {
					t.Errorf("recent layer holds %d bytes, above %d", b, c.recentMax)
					return
				}
			}
		})
	}
	wg.Wait()
	c.Wait()
	if s := c.Stats(); s.Bytes > 256<<10 {
		t.Errorf("Stats.Bytes = %d, above the budget", s.Bytes)
	}
}
