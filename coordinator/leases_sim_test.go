package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// simClock is a shared base time that stands still while any operation is
// running (read lock) and moves only between operations (write lock), so
// that each operation decides at a known base time. Each coordinator reads it
// with its own skew.
type simClock struct {
	mu   sync.RWMutex
	base atomic.Int64 // UnixNano
}

func (c *simClock) at(skew time.Duration) func() time.Time {
	return func() time.Time { return time.Unix(0, c.base.Load()).UTC().Add(skew) }
}

// simGrant is one successful Acquire or Renew as its caller saw it.
type simGrant struct {
	p          string
	acquire    bool
	g          segmentlog.LeaseGrant
	skew       time.Duration // of the coordinator that answered
	base       time.Time     // base time at which it was decided
	start, end int64         // sequence numbers around the call
}

// simRelease is one Release call. The holder stops at the call, having
// used ticks up to lastTick, whatever the outcome. ok: it returned nil;
// otherwise it returned ErrLeaseLost, and under store faults may still have
// landed (its reply lost, then the pchannel taken at once).
type simRelease struct {
	p              string
	term           uint64
	tail, lastTick uint64
	ok             bool
}

type simLog struct {
	mu       sync.Mutex
	grants   []simGrant
	releases []simRelease
	counts   map[string]int
}

func (l *simLog) count(what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[what]++
}

// TestManyCoordinators: several coordinators over one store, with clocks
// skewed within the margin, serve workers that acquire, renew, release and
// abandon leases of 4 pchannels while time moves on. Afterwards every grant
// is checked against the lease rules. It runs over a clean store, and over
// one that fails requests, loses replies and applies writes late.
func TestManyCoordinators(t *testing.T) {
	t.Run("clean", func(t *testing.T) { simulate(t, objstore.NewMemory(), nil) })
	t.Run("faults", func(t *testing.T) {
		f := objstore.NewFault(objstore.NewMemory(), objstore.FaultConfig{
			Seed: 7, ErrorRate: 0.05, LostReplyRate: 0.05, DelayedApplyRate: 0.05, DelayedApply: 5 * time.Millisecond,
		})
		simulate(t, f, f)
	})
}

func simulate(t *testing.T, store objstore.Store, fault *objstore.Fault) {
	var (
		clk        = &simClock{}
		skews      = []time.Duration{-time.Second, -500 * time.Millisecond, 0, 500 * time.Millisecond, time.Second}
		pchannels  = []string{"p0", "p1", "p2", "p3"}
		workers    = 8
		opsPerWkr  = 500
		seq        atomic.Int64
		log        = &simLog{counts: map[string]int{}}
		coords     []*Leases
		testCtx    = context.Background()
		cfg        = LeaseConfig{}.withDefaults()
		failed     atomic.Bool
		fatalf     = func(format string, args ...any) { failed.Store(true); t.Errorf(format, args...) }
		maxAdvance = int64(1500 * time.Millisecond)
	)
	clk.base.Store(t0.UnixNano())
	for _, s := range skews {
		coords = append(coords, newTestLeases(t, store, clk.at(s)))
	}

	type holding struct {
		g    segmentlog.LeaseGrant
		tail uint64
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			holder := fmt.Sprintf("w%d", w)
			held := map[string]*holding{}
			for op := 0; op < opsPerWkr && !failed.Load(); op++ {
				p := pchannels[rng.IntN(len(pchannels))]
				if len(held) > 0 && rng.IntN(2) == 0 {
					// Mostly look after what this worker holds.
					for q := range held {
						p = q
						break
					}
				}
				ci := rng.IntN(len(coords))
				c := coords[ci]

				clk.mu.RLock()
				base := time.Unix(0, clk.base.Load()).UTC()
				record := func(acquire bool, g segmentlog.LeaseGrant, start int64) {
					log.mu.Lock()
					defer log.mu.Unlock()
					log.grants = append(log.grants, simGrant{p: p, acquire: acquire, g: g, skew: skews[ci], base: base, start: start, end: seq.Add(1)})
				}
				h := held[p]
				switch r := rng.IntN(100); {
				case h == nil:
					nonce := fmt.Sprintf("%s-%d", holder, op)
					start := seq.Add(1)
					g, err := c.Acquire(testCtx, p, holder, nonce)
					switch {
					case err == nil:
						record(true, g, start)
						log.count("acquired")
						held[p] = &holding{g: g, tail: g.TailHint}
						if rng.IntN(5) == 0 {
							// A retry (reply lost, say) through another coordinator.
							g2, err := coords[rng.IntN(len(coords))].Acquire(testCtx, p, holder, nonce)
							if err != nil || g2.Term != g.Term || g2.TickFloor != g.TickFloor || g2.TickMax != g.TickMax {
								fatalf("retry of %s: %+v, %v; first %+v", nonce, g2, err, g)
							}
							log.count("retried")
						}
					case errors.Is(err, ErrLeaseHeld):
						log.count("held")
					default:
						fatalf("acquire %s: %v", p, err)
					}
				case r < 55:
					start := seq.Add(1)
					g, err := c.Renew(testCtx, p, h.g.Term, h.g.Nonce)
					switch {
					case err == nil:
						if g.Term != h.g.Term || g.Nonce != h.g.Nonce || g.TickFloor != h.g.TickFloor || g.TickMax < h.g.TickMax {
							fatalf("renew of %+v gave %+v", h.g, g)
						}
						record(false, g, start)
						log.count("renewed")
						h.g = g
					case errors.Is(err, ErrLeaseLost):
						log.count("renew lost")
						delete(held, p)
					default:
						fatalf("renew %s: %v", p, err)
					}
				case r < 80:
					// Release with the frontier reached and some tick this
					// holder used, within its range.
					tail := h.tail + uint64(rng.IntN(20))
					last := h.g.TickFloor + 1 + rng.Uint64N(h.g.TickMax-h.g.TickFloor)
					err := c.Release(testCtx, p, h.g.Term, h.g.Nonce, tail, last)
					switch {
					case err == nil:
						log.count("released")
					case errors.Is(err, ErrLeaseLost):
						log.count("release lost")
					default:
						fatalf("release %s: %v", p, err)
					}
					log.mu.Lock()
					log.releases = append(log.releases, simRelease{p: p, term: h.g.Term, tail: tail, lastTick: last, ok: err == nil})
					log.mu.Unlock()
					delete(held, p)
				default:
					// Crash: walk away from the lease; it expires.
					log.count("abandoned")
					delete(held, p)
				}
				clk.mu.RUnlock()

				if rng.IntN(10) < 3 {
					clk.mu.Lock()
					clk.base.Add(rng.Int64N(maxAdvance))
					clk.mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if fault != nil {
		fault.Drain()
		st := fault.Stats()
		t.Logf("faults: %v injected errors, %d lost replies, %d late writes (%d applied)",
			st.Injected, st.LostReplies, st.DelayedWrites, st.DelayedApplied)
		if st.LostReplies == 0 || st.DelayedWrites == 0 {
			t.Errorf("no lost reply or late write was injected")
		}
	}
	t.Logf("operations: %v", log.counts)
	if failed.Load() {
		return
	}
	for _, what := range []string{"acquired", "held", "renewed", "renew lost", "released", "retried"} {
		if log.counts[what] == 0 {
			t.Errorf("no %q operation: the simulation did not exercise it", what)
		}
	}
	// Takeovers of expired leases happened (not only after releases).
	if log.counts["acquired"] <= log.counts["released"] {
		t.Errorf("no takeover of an expired lease")
	}

	for _, p := range pchannels {
		checkSimHistory(t, p, log, cfg, skews[len(skews)-1])
	}
	// The records agree with the history.
	for _, p := range pchannels {
		rec := mustDescribe(t, coords[0], p)
		var top uint64
		for _, g := range log.grants {
			if g.p == p && g.acquire {
				top = max(top, g.g.Term)
			}
		}
		if rec.Term != top {
			t.Errorf("%s: record at term %d, highest granted %d", p, rec.Term, top)
		}
	}
}

func checkSimHistory(t *testing.T, p string, log *simLog, cfg LeaseConfig, maxSkew time.Duration) {
	t.Helper()
	var grants, acquires []simGrant
	for _, g := range log.grants {
		if g.p == p {
			grants = append(grants, g)
			if g.acquire {
				acquires = append(acquires, g)
			}
		}
	}
	// At most one Release call per term: its holder stops at the call.
	stopped := map[uint64]simRelease{}
	for _, r := range log.releases {
		if r.p == p {
			if _, dup := stopped[r.term]; dup {
				t.Errorf("%s: term %d released twice", p, r.term)
			}
			stopped[r.term] = r
		}
	}

	// Each term has exactly one nonce.
	nonceOf := map[uint64]string{}
	for _, g := range grants {
		if n, ok := nonceOf[g.g.Term]; ok && n != g.g.Nonce {
			t.Fatalf("%s: term %d granted to nonces %q and %q", p, g.g.Term, n, g.g.Nonce)
		}
		nonceOf[g.g.Term] = g.g.Nonce
	}

	// Acquires bump the term by exactly one: terms 1..n, each once.
	sort.Slice(acquires, func(i, j int) bool { return acquires[i].g.Term < acquires[j].g.Term })
	for i, a := range acquires {
		if a.g.Term != uint64(i+1) {
			t.Fatalf("%s: acquired terms are not 1..n: %d at position %d", p, a.g.Term, i)
		}
	}

	// An acquire that started after another finished got a higher term.
	for _, a := range acquires {
		for _, b := range acquires {
			if a.end < b.start && a.g.Term >= b.g.Term {
				t.Fatalf("%s: term %d (finished at %d) then term %d (started at %d)", p, a.g.Term, a.end, b.g.Term, b.start)
			}
		}
	}

	// used[t]: the highest tick term t may have stamped: the last tick its
	// holder reported when it stopped, else the highest tt_max it was
	// granted (it crashed, or lost the lease).
	used := map[uint64]uint64{}
	for _, g := range grants {
		used[g.g.Term] = max(used[g.g.Term], g.g.TickMax)
	}
	for term, r := range stopped {
		used[term] = r.lastTick
	}

	for _, b := range acquires {
		// The tail hint is the highest tail released before: at least every
		// release known to have landed, at most every one attempted.
		var floor, tailMin, tailMax uint64
		for term, r := range stopped {
			if term < b.g.Term {
				tailMax = max(tailMax, r.tail)
				if r.ok {
					tailMin = max(tailMin, r.tail)
				}
			}
		}
		for term, u := range used {
			if term < b.g.Term {
				floor = max(floor, u)
			}
		}
		if b.g.TickFloor < floor || b.g.TickMax <= b.g.TickFloor {
			t.Fatalf("%s: term %d has ticks (%d, %d], earlier terms used up to %d", p, b.g.Term, b.g.TickFloor, b.g.TickMax, floor)
		}
		if b.g.TailHint < tailMin || b.g.TailHint > tailMax {
			t.Fatalf("%s: term %d tail hint %d, want within [%d, %d]", p, b.g.Term, b.g.TailHint, tailMin, tailMax)
		}
		// A term that was not released is taken over only after its lease
		// ran out plus the margin. Its holder stops at deadline = t_send +
		// TTL − m (by the clock that answered it), the lease runs out at
		// t_send + TTL at the earliest, and the taker's clock must pass
		// that plus m. In base time, with skews of at most maxSkew either
		// way: more than 2m − 2·maxSkew after the deadline.
		for _, a := range grants {
			if _, stop := stopped[a.g.Term]; a.g.Term < b.g.Term && !stop {
				dl := a.g.Deadline.Add(-a.skew)
				if gap := b.base.Sub(dl); gap <= 2*cfg.Margin-2*maxSkew {
					t.Fatalf("%s: term %d decided at %v, only %v after term %d's deadline %v",
						p, b.g.Term, b.base, gap, a.g.Term, dl)
				}
			}
		}
		// Its own deadline follows from when it was sent.
		if want := b.base.Add(b.skew + cfg.TTL - cfg.Margin); !b.g.Deadline.Equal(want) {
			t.Fatalf("%s: term %d deadline %v, want %v", p, b.g.Term, b.g.Deadline, want)
		}
	}
}
