package coordinator_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// grantLog records every lease grant and release the writers saw, to check
// that no two terms of a pchannel ever held it at once.
type grantLog struct {
	mu     sync.Mutex
	events []grantEvent
}

type grantEvent struct {
	p, holder string
	term      uint64
	release   bool
	ok        bool      // release: it returned nil
	at        time.Time // grant: when it returned; release: when it was called
	deadline  time.Time // grant: no PUT of this term after it
	takeover  bool      // grant: a forced takeover (a balancing move)
}

func (l *grantLog) add(e grantEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

type recordingLeases struct {
	inner  *coordinator.Leases
	holder string
	log    *grantLog
}

// Takeover is the forced acquire of a balancing move (Holder.TakeOver).
func (r *recordingLeases) Takeover(ctx context.Context, p, holder, nonce string) (sl.LeaseGrant, error) {
	g, err := r.inner.Takeover(ctx, p, holder, nonce)
	if err == nil {
		r.log.add(grantEvent{p: p, holder: holder, term: g.Term, at: time.Now(), deadline: g.Deadline, takeover: true})
	}
	return g, err
}

func (r *recordingLeases) Acquire(ctx context.Context, p, holder, nonce string) (sl.LeaseGrant, error) {
	g, err := r.inner.Acquire(ctx, p, holder, nonce)
	if err == nil {
		r.log.add(grantEvent{p: p, holder: holder, term: g.Term, at: time.Now(), deadline: g.Deadline})
	}
	return g, err
}

func (r *recordingLeases) Renew(ctx context.Context, p string, term uint64, nonce string) (sl.LeaseGrant, error) {
	g, err := r.inner.Renew(ctx, p, term, nonce)
	if err == nil {
		r.log.add(grantEvent{p: p, holder: r.holder, term: g.Term, at: time.Now(), deadline: g.Deadline})
	}
	return g, err
}

func (r *recordingLeases) Release(ctx context.Context, p string, term uint64, nonce string, tail, lastTick uint64) error {
	at := time.Now()
	err := r.inner.Release(ctx, p, term, nonce, tail, lastTick)
	r.log.add(grantEvent{p: p, holder: r.holder, term: term, release: true, ok: err == nil, at: at})
	return err
}

// handover returns, for pchannel p, the last deadline node from was
// granted and when the first later term was acquired by another holder.
func (l *grantLog) handover(p, from string) (lastDeadline, acquired time.Time, to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var fromTerm uint64
	for _, e := range l.events {
		if e.p == p && e.holder == from && !e.release && e.term >= fromTerm {
			fromTerm = e.term
			if e.deadline.After(lastDeadline) {
				lastDeadline = e.deadline
			}
		}
	}
	for _, e := range l.events {
		if e.p == p && e.term > fromTerm && !e.release && (acquired.IsZero() || e.at.Before(acquired)) {
			acquired, to = e.at, e.holder
		}
	}
	return lastDeadline, acquired, to
}

// checkExclusive verifies that each term of each pchannel had one holder
// and that the terms' holding intervals never overlap: term T holds from
// its acquire until its last deadline, or until it called a release that
// succeeded; the next term's acquire returns only after that — unless the
// next term was a forced takeover (a balancing move), which by design
// overlaps the live term it fences (docs/protocol.md, "Acquire" 4);
// overlapped counts those; takeovers counts every term a move took with a
// forced takeover (its old holder may have let go first). checkDelivery is
// what shows nothing acked was lost or duplicated across them.
func (l *grantLog) checkExclusive(t *testing.T) (terms, takeovers, overlapped int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	type span struct {
		holder     string
		start, end time.Time
		released   time.Time
		takeover   bool
	}
	spans := map[string]map[uint64]*span{}
	for _, e := range l.events {
		if spans[e.p] == nil {
			spans[e.p] = map[uint64]*span{}
		}
		s := spans[e.p][e.term]
		if s == nil {
			s = &span{holder: e.holder}
			spans[e.p][e.term] = s
		}
		if s.holder != e.holder {
			t.Errorf("%s term %d held by %s and %s", e.p, e.term, s.holder, e.holder)
		}
		switch {
		case e.release && e.ok:
			if s.released.IsZero() || e.at.Before(s.released) {
				s.released = e.at
			}
		case !e.release:
			if s.start.IsZero() || e.at.Before(s.start) {
				s.start = e.at
			}
			s.takeover = s.takeover || e.takeover
			if e.deadline.After(s.end) {
				s.end = e.deadline
			}
		}
	}
	for p, byTerm := range spans {
		ts := slices.Sorted(maps.Keys(byTerm))
		for i, term := range ts {
			s := byTerm[term]
			if !s.released.IsZero() && s.released.Before(s.end) {
				s.end = s.released
			}
			if i > 0 {
				prev := byTerm[ts[i-1]]
				overlap := !s.start.IsZero() && !prev.end.Before(s.start)
				if overlap && s.takeover {
					overlapped++
				} else if overlap {
					t.Errorf("%s: term %d (%s) held until %s, term %d (%s) acquired at %s",
						p, ts[i-1], prev.holder, prev.end.Format("15:04:05.000"), term, s.holder, s.start.Format("15:04:05.000"))
				}
			}
		}
		terms += len(ts)
		for _, s := range byTerm {
			if s.takeover {
				takeovers++
			}
		}
	}
	return terms, takeovers, overlapped
}

// checkDelivery scans every pchannel from the start and checks each acked
// message is delivered exactly once, at its acked ID, and that nothing is
// delivered that no producer sent or that was delivered twice.
func (c *cluster) checkDelivery(t *testing.T, producers []*producer) (acked, delivered int) {
	t.Helper()
	ps, err := c.reg.PChannels(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[sl.IdemKey]sl.Delivery{}
	for _, p := range ps {
		for _, d := range scan(t, c.base, c.layout, p, nil) {
			if first, dup := seen[d.Key]; dup {
				t.Errorf("key %+v delivered twice: %s %v and %s %v", d.Key, first.VChannel, first.ID, d.VChannel, d.ID)
			}
			seen[d.Key] = d
			delivered++
		}
	}
	tried := map[sl.IdemKey]bool{}
	for _, pr := range producers {
		pr.mu.Lock()
		for k, a := range pr.acks {
			acked++
			d, ok := seen[k]
			if !ok {
				t.Errorf("acked %+v at %v never delivered", k, a.ID)
				continue
			}
			if d.ID != a.ID || d.TimeTick != a.TimeTick || d.VChannel != pr.vchannel || string(d.Payload) != fmt.Sprintf("%s/%d", k.Producer, k.Seq) {
				t.Errorf("acked %+v at %v tick %d, delivered at %v tick %d on %s payload %q", k, a.ID, a.TimeTick, d.ID, d.TimeTick, d.VChannel, d.Payload)
			}
		}
		maps.Copy(tried, pr.tried)
		pr.mu.Unlock()
	}
	for k, d := range seen {
		if !tried[k] {
			t.Errorf("delivered %+v at %v that no producer sent", k, d.ID)
		}
	}
	return acked, delivered
}

// scan reads pchannel p from the start to the tail with the given types
// (nil: data).
func scan(t *testing.T, store objstore.Store, layout sl.Layout, p string, types []sl.MessageType) []sl.Delivery {
	t.Helper()
	return testkit.Scan(t, context.Background(), store, sl.ScannerConfig{PChannel: p, Layout: layout, Types: types, GetTimeout: 5 * time.Second})
}

// opCounts snapshots the calls of a counting store.
func opCounts(f *objstore.Fault) map[objstore.Op]int64 { return f.Stats().Calls }

func diffOps(after, before map[objstore.Op]int64) map[objstore.Op]int64 {
	out := map[objstore.Op]int64{}
	for op, n := range after {
		if d := n - before[op]; d != 0 {
			out[op] = d
		}
	}
	return out
}

func totalOps(m map[objstore.Op]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func fmtOps(m map[objstore.Op]int64) string {
	var parts []string
	for op, n := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", op, n))
	}
	sort.Strings(parts)
	return fmt.Sprint(parts)
}
