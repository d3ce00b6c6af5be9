package coordinator

import (
	"errors"
	"testing"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

var (
	testCfg = LeaseConfig{}.withDefaults()
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// heldAt is a live lease of term 4 acquired at at by node-a with nonce n4.
func heldAt(at time.Time) Lease {
	return Lease{
		PChannel:   "p0",
		Term:       4,
		Nonce:      "n4",
		Holder:     "node-a",
		Expires:    at.Add(testCfg.TTL),
		Tail:       100,
		TTMax:      segmentlog.TickOf(at.Add(testCfg.TTL)),
		LastTick:   segmentlog.TickOf(at.Add(-2 * time.Minute)), // the last release before the term that expired
		TickFloor:  segmentlog.TickOf(at.Add(-time.Minute)),
		Version:    9,
		AcquiredAt: at,
	}
}

func released(l Lease, tail, lastTick uint64, at time.Time) Lease {
	l.Released = true
	l.Tail = tail
	l.LastTick = lastTick
	l.Expires = at
	l.Version++
	return l
}

func TestDecideAcquire(t *testing.T) {
	live := heldAt(t0)
	expiredAt := live.Expires.Add(testCfg.Margin) // taken over strictly after this
	rel := released(live, 150, segmentlog.TickOf(t0.Add(3*time.Second)), t0.Add(4*time.Second))
	// A clock far behind: the expired holder's tt_max is above what this
	// clock would give a new holder.
	ahead := live
	ahead.TTMax = segmentlog.TickOf(t0.Add(time.Hour))

	tests := []struct {
		name    string
		cur     *Lease
		holder  string
		nonce   string
		now     time.Time
		want    Lease // compared when wantErr is nil
		wantErr error
		retry   time.Duration // RetryAfter of a *HeldError
	}{
		{
			name: "no record: term 1", cur: nil, holder: "node-b", nonce: "n1", now: t0,
			want: Lease{PChannel: "p0", Term: 1, Nonce: "n1", Holder: "node-b", Expires: t0.Add(testCfg.TTL),
				TTMax: segmentlog.TickOf(t0.Add(testCfg.TTL)), Version: 1, AcquiredAt: t0},
		},
		{
			name: "live lease is held", cur: &live, holder: "node-b", nonce: "n5", now: t0.Add(time.Second),
			wantErr: ErrLeaseHeld, retry: testCfg.TTL + testCfg.Margin - time.Second + time.Millisecond,
		},
		{
			name: "expired but within margin is held", cur: &live, holder: "node-b", nonce: "n5", now: live.Expires.Add(time.Second),
			wantErr: ErrLeaseHeld, retry: testCfg.Margin - time.Second + time.Millisecond,
		},
		{
			name: "exactly expires+margin is held", cur: &live, holder: "node-b", nonce: "n5", now: expiredAt,
			wantErr: ErrLeaseHeld, retry: time.Millisecond,
		},
		{
			name: "after expires+margin: next term, floor is old tt_max", cur: &live, holder: "node-b", nonce: "n5",
			now: expiredAt.Add(time.Millisecond),
			want: Lease{PChannel: "p0", Term: 5, Nonce: "n5", Holder: "node-b",
				Expires: expiredAt.Add(time.Millisecond + testCfg.TTL), Tail: 100,
				TTMax:    max(segmentlog.TickOf(expiredAt.Add(time.Millisecond+testCfg.TTL)), live.TTMax+segmentlog.TickSpan(testCfg.TTL)),
				LastTick: live.LastTick, TickFloor: live.TTMax, Version: 10, AcquiredAt: expiredAt.Add(time.Millisecond)},
		},
		{
			name: "expired, clock behind old tt_max: tt_max is floor+TTL", cur: &ahead, holder: "node-b", nonce: "n5",
			now: expiredAt.Add(time.Millisecond),
			want: Lease{PChannel: "p0", Term: 5, Nonce: "n5", Holder: "node-b",
				Expires: expiredAt.Add(time.Millisecond + testCfg.TTL), Tail: 100,
				TTMax:    ahead.TTMax + segmentlog.TickSpan(testCfg.TTL),
				LastTick: ahead.LastTick, TickFloor: ahead.TTMax, Version: 10, AcquiredAt: expiredAt.Add(time.Millisecond)},
		},
		{
			name: "released: at once, floor is releaser's last tick, tail kept", cur: &rel, holder: "node-b", nonce: "n5",
			now: t0.Add(5 * time.Second),
			want: Lease{PChannel: "p0", Term: 5, Nonce: "n5", Holder: "node-b",
				Expires: t0.Add(5*time.Second + testCfg.TTL), Tail: 150,
				TTMax:    max(segmentlog.TickOf(t0.Add(5*time.Second+testCfg.TTL)), rel.LastTick+segmentlog.TickSpan(testCfg.TTL)),
				LastTick: rel.LastTick, TickFloor: rel.LastTick, Version: 11, AcquiredAt: t0.Add(5 * time.Second)},
		},
		{
			name: "released by the same holder: a new nonce gets a new term", cur: &rel, holder: "node-a", nonce: "n5",
			now: t0.Add(5 * time.Second),
			want: Lease{PChannel: "p0", Term: 5, Nonce: "n5", Holder: "node-a",
				Expires: t0.Add(5*time.Second + testCfg.TTL), Tail: 150,
				TTMax:    max(segmentlog.TickOf(t0.Add(5*time.Second+testCfg.TTL)), rel.LastTick+segmentlog.TickSpan(testCfg.TTL)),
				LastTick: rel.LastTick, TickFloor: rel.LastTick, Version: 11, AcquiredAt: t0.Add(5 * time.Second)},
		},
		{
			name: "retry with same nonce and holder: unchanged", cur: &live, holder: "node-a", nonce: "n4",
			now: t0.Add(time.Second), want: live,
		},
		{
			name: "retry after expiry, nobody acquired: unchanged", cur: &live, holder: "node-a", nonce: "n4",
			now: expiredAt.Add(time.Minute), want: live,
		},
		{
			name: "same nonce, other holder", cur: &live, holder: "node-b", nonce: "n4", now: t0,
			wantErr: ErrNonceReused,
		},
		{
			name: "same nonce after release", cur: &rel, holder: "node-a", nonce: "n4", now: t0.Add(5 * time.Second),
			wantErr: ErrNonceReused,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decideAcquire(tc.cur, "p0", tc.holder, tc.nonce, tc.now, testCfg)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				var he *HeldError
				if errors.As(err, &he) {
					if he.RetryAfter != tc.retry || he.Holder != tc.cur.Holder || he.Term != tc.cur.Term {
						t.Fatalf("HeldError = %+v, want holder %q term %d retry %v", he, tc.cur.Holder, tc.cur.Term, tc.retry)
					}
					if !tc.now.Add(he.RetryAfter).After(tc.cur.Expires.Add(testCfg.Margin)) {
						t.Fatalf("RetryAfter %v is too short to be granted", he.RetryAfter)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
			if tc.cur != nil && got.Term < tc.cur.Term {
				t.Fatalf("term went down: %d -> %d", tc.cur.Term, got.Term)
			}
			if got.TTMax <= got.TickFloor {
				t.Fatalf("no tick room: floor %d, tt_max %d", got.TickFloor, got.TTMax)
			}
		})
	}
}

func TestDecideRenew(t *testing.T) {
	live := heldAt(t0)
	rel := released(live, 150, segmentlog.TickOf(t0.Add(3*time.Second)), t0.Add(4*time.Second))
	renewed := func(now time.Time) Lease {
		l := live
		l.Expires = now.Add(testCfg.TTL)
		l.TTMax = segmentlog.TickOf(now.Add(testCfg.TTL))
		l.Version++
		return l
	}
	tests := []struct {
		name    string
		cur     Lease
		term    uint64
		nonce   string
		now     time.Time
		want    Lease
		wantErr error
	}{
		{name: "extends expires and tt_max", cur: live, term: 4, nonce: "n4", now: t0.Add(3 * time.Second),
			want: renewed(t0.Add(3 * time.Second))},
		{name: "after expiry, nobody acquired", cur: live, term: 4, nonce: "n4", now: t0.Add(time.Minute),
			want: renewed(t0.Add(time.Minute))},
		{name: "clock behind: nothing decreases", cur: live, term: 4, nonce: "n4", now: t0.Add(-2 * time.Second),
			want: func() Lease { l := live; l.Version++; return l }()},
		{name: "other term", cur: live, term: 3, nonce: "n4", now: t0, wantErr: ErrLeaseLost},
		{name: "other nonce", cur: live, term: 4, nonce: "n3", now: t0, wantErr: ErrLeaseLost},
		{name: "released", cur: rel, term: 4, nonce: "n4", now: t0.Add(5 * time.Second), wantErr: ErrLeaseLost},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decideRenew(tc.cur, tc.term, tc.nonce, tc.now, testCfg)
			if tc.wantErr != nil || err != nil {
				if !errors.Is(err, tc.wantErr) || tc.wantErr == nil {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDecideRelease(t *testing.T) {
	live := heldAt(t0)
	now := t0.Add(4 * time.Second)
	tick := segmentlog.TickOf(t0.Add(3 * time.Second))
	rel := released(live, 150, tick, now)
	tests := []struct {
		name     string
		cur      Lease
		term     uint64
		nonce    string
		tail     uint64
		lastTick uint64
		want     Lease
		wantErr  error
	}{
		{name: "releases with tail and last tick", cur: live, term: 4, nonce: "n4", tail: 150, lastTick: tick, want: rel},
		{name: "tail below the hint keeps the hint", cur: live, term: 4, nonce: "n4", tail: 90, lastTick: tick,
			want: released(live, 100, tick, now)},
		{name: "no tick used: last tick is the floor", cur: live, term: 4, nonce: "n4", tail: 150, lastTick: 0,
			want: released(live, 150, live.TickFloor, now)},
		{name: "again, same values: unchanged", cur: rel, term: 4, nonce: "n4", tail: 150, lastTick: tick, want: rel},
		{name: "again, lower values: unchanged", cur: rel, term: 4, nonce: "n4", tail: 120, lastTick: 1, want: rel},
		{name: "again, higher last tick: raised", cur: rel, term: 4, nonce: "n4", tail: 150, lastTick: tick + 5,
			want: func() Lease { l := rel; l.LastTick = tick + 5; l.Version++; return l }()},
		{name: "other term", cur: live, term: 5, nonce: "n4", wantErr: ErrLeaseLost},
		{name: "other nonce", cur: live, term: 4, nonce: "n5", wantErr: ErrLeaseLost},
		{name: "released term, other nonce", cur: rel, term: 4, nonce: "x", wantErr: ErrLeaseLost},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decideRelease(tc.cur, tc.term, tc.nonce, tc.tail, tc.lastTick, now)
			if tc.wantErr != nil || err != nil {
				if !errors.Is(err, tc.wantErr) || tc.wantErr == nil {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestDecideChain runs a script of decisions and checks the properties
// that span terms: terms go up by one per acquire only, and every term's
// ticks start above everything earlier terms may have used.
func TestDecideChain(t *testing.T) {
	now := t0
	var cur *Lease
	used := uint64(0) // highest tick any earlier term may have used
	step := func(name string) func(Lease, error) Lease {
		return func(l Lease, err error) Lease {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if cur != nil && l.Version != cur.Version+1 {
				t.Fatalf("%s: version %d after %d", name, l.Version, cur.Version)
			}
			cur = &l
			return l
		}
	}
	a := step("acquire a")(decideAcquire(cur, "p0", "a", "na", now, testCfg))
	now = now.Add(3 * time.Second)
	a = step("renew a")(decideRenew(*cur, a.Term, "na", now, testCfg))
	used = a.TTMax // a crashes: it may have used its whole range

	now = a.Expires.Add(testCfg.Margin + time.Millisecond)
	b := step("acquire b")(decideAcquire(cur, "p0", "b", "nb", now, testCfg))
	if b.Term != a.Term+1 || b.TickFloor < used {
		t.Fatalf("b: term %d floor %d, want term %d floor ≥ %d", b.Term, b.TickFloor, a.Term+1, used)
	}
	if _, err := decideRenew(*cur, a.Term, "na", now, testCfg); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("zombie renew: %v", err)
	}
	now = now.Add(time.Second)
	last := b.TickFloor + 7
	step("release b")(decideRelease(*cur, b.Term, "nb", 33, last, now))
	used = last

	c := step("acquire c")(decideAcquire(cur, "p0", "c", "nc", now, testCfg))
	if c.Term != b.Term+1 || c.TickFloor < used || c.Tail != 33 {
		t.Fatalf("c: %+v", c)
	}
	// c releases without having stamped a tick: d must still start above b.
	step("release c")(decideRelease(*cur, c.Term, "nc", 33, 0, now))
	d := step("acquire d")(decideAcquire(cur, "p0", "d", "nd", now, testCfg))
	if d.Term != c.Term+1 || d.TickFloor < used {
		t.Fatalf("d: %+v", d)
	}
}

func TestGrantOf(t *testing.T) {
	l := heldAt(t0)
	g := grantOf(l, t0, testCfg)
	want := segmentlog.LeaseGrant{PChannel: "p0", Term: 4, Nonce: "n4", Deadline: t0.Add(testCfg.TTL - testCfg.Margin),
		TickFloor: l.TickFloor, TickMax: l.TTMax, TailHint: 100}
	if g != want {
		t.Fatalf("got  %+v\nwant %+v", g, want)
	}
	// Sent before the decision: the deadline runs from the send time.
	if g := grantOf(l, t0.Add(-time.Second), testCfg); !g.Deadline.Equal(t0.Add(testCfg.TTL - testCfg.Margin - time.Second)) {
		t.Fatalf("deadline %v", g.Deadline)
	}
	// A retry sent later than the record was written: never past expires − margin.
	if g := grantOf(l, t0.Add(5*time.Second), testCfg); !g.Deadline.Equal(l.Expires.Add(-testCfg.Margin)) {
		t.Fatalf("deadline %v, want %v", g.Deadline, l.Expires.Add(-testCfg.Margin))
	}
}

func TestLeaseConfig(t *testing.T) {
	tests := []struct {
		cfg LeaseConfig
		ok  bool
	}{
		{LeaseConfig{}.withDefaults(), true},
		{LeaseConfig{TTL: time.Second, Margin: 999 * time.Millisecond}, true},
		{LeaseConfig{TTL: 5 * time.Second}.withDefaults(), true},
		{LeaseConfig{}, false},
		{LeaseConfig{TTL: 10 * time.Second, Margin: 10 * time.Second}, false},
		{LeaseConfig{TTL: 10 * time.Second, Margin: -time.Second}, false},
		{LeaseConfig{TTL: 2 * time.Second}.withDefaults(), false}, // default margin 2.5s ≥ TTL
	}
	for _, tc := range tests {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v, want ok=%t", tc.cfg, err, tc.ok)
		}
	}
	if d := (LeaseConfig{}).withDefaults(); d.TTL != 10*time.Second || d.Margin != 2500*time.Millisecond {
		t.Fatalf("defaults %+v", d)
	}
}
