package coordinator

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var testPolicy = assignPolicy{SessionTTL: 10 * time.Second, StuckTimeout: 30 * time.Second, LeaseMargin: 2500 * time.Millisecond,
	Quarantine: 120 * time.Second}

func sess(node string, heartbeat time.Time) Session {
	return Session{Node: node, Incarnation: node + "-1", Heartbeat: heartbeat, Started: heartbeat, Version: 1}
}

func asg(p string, state AssignmentState, node, from string, since time.Time) Assignment {
	return Assignment{PChannel: p, State: state, Node: node, From: from, Since: since, Version: 7}
}

// liveLease is a lease of p held by holder that expires at expires.
func liveLease(p, holder string, term uint64, expires time.Time) *Lease {
	return &Lease{PChannel: p, Term: term, Holder: holder, Nonce: fmt.Sprint(holder, term), Expires: expires, Version: term}
}

// takeOver marks a as a balancing move.
func takeOver(a Assignment) Assignment {
	a.TakeOver = true
	return a
}

func releasedLease(p, holder string, term uint64, at time.Time) *Lease {
	l := liveLease(p, holder, term, at)
	l.Released = true
	return l
}

// TestDecideAssignments pins the edges of each rule; the scripts in
// testdata/assign show them in motion.
func TestDecideAssignments(t *testing.T) {
	now := t0.Add(time.Hour)
	alive := func(nodes ...string) []Session {
		var out []Session
		for _, n := range nodes {
			out = append(out, sess(n, now.Add(-time.Second)))
		}
		return out
	}
	expired := sess("a", now.Add(-testPolicy.SessionTTL-time.Millisecond))

	tests := []struct {
		name string
		view clusterView
		want []string // "p: state(node) from" of each change, in order
	}{
		{
			name: "expired session, live lease: nothing moves",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigned, "a", "", t0)},
				Sessions:    append(alive("b"), expired),
				Leases:      map[string]*Lease{"p0": liveLease("p0", "a", 3, now.Add(time.Second))},
			},
		},
		{
			name: "a live node took the lease over from a dead one: it keeps the pchannel",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigned, "a", "", t0)},
				Sessions:    append(alive("b"), expired),
				Leases:      map[string]*Lease{"p0": liveLease("p0", "b", 4, now.Add(5*time.Second))},
			},
			want: []string{"p0: assigned(b) avoid= b took the lease over from a, which is not alive (term 4)"},
		},
		{
			name: "a live node holds the lease of a live node's pchannel: it lets go, nothing moves",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigned, "a", "", t0)},
				Sessions:    alive("a", "b"),
				Leases:      map[string]*Lease{"p0": liveLease("p0", "b", 4, now.Add(5*time.Second))},
			},
		},
		{
			name: "lease expired but within the margin: nothing moves",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigned, "a", "", t0)},
				Sessions:    append(alive("b"), expired),
				Leases:      map[string]*Lease{"p0": liveLease("p0", "a", 3, now.Add(-testPolicy.LeaseMargin))},
			},
		},
		{
			name: "lease free past expiry plus margin: reassigned",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigned, "a", "", t0)},
				Sessions:    append(alive("b"), expired),
				Leases:      map[string]*Lease{"p0": liveLease("p0", "a", 3, now.Add(-testPolicy.LeaseMargin-time.Millisecond))},
			},
			want: []string{"p0: assigning(b) avoid= lease of a expired (term 3)"},
		},
		{
			name: "assigned node alive, lease released by it: parked, it keeps the pchannel",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigned, "a", "", t0), asg("p1", PChannelAssigned, "b", "", t0)},
				Sessions:    alive("a", "b"),
				Leases: map[string]*Lease{"p0": releasedLease("p0", "a", 3, now.Add(-time.Hour)),
					"p1": liveLease("p1", "b", 1, now.Add(time.Second))},
			},
		},
		{
			name: "parked pchannels balance like held ones",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigned, "a", "", t0), asg("p1", PChannelAssigned, "a", "", t0)},
				Sessions:    alive("a", "b"),
				Leases: map[string]*Lease{"p0": releasedLease("p0", "a", 3, now.Add(-time.Hour)),
					"p1": releasedLease("p1", "a", 1, now.Add(-time.Hour))},
			},
			want: []string{"p1: assigning(b) from=a takeover avoid= balance: a holds 2, b holds 0"},
		},
		{
			name: "lease released by a node that is not alive: reassigned elsewhere, not quarantined",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigned, "a", "", t0), asg("p1", PChannelAssigned, "b", "", t0)},
				Sessions:    append(alive("b"), expired),
				Leases: map[string]*Lease{"p0": releasedLease("p0", "a", 3, now.Add(-time.Second)),
					"p1": liveLease("p1", "b", 1, now.Add(time.Second))},
			},
			want: []string{"p0: assigning(b) avoid= a released the lease (term 3)"},
		},
		{
			name: "lease released by another node than the assigned one: reassigned",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigned, "a", "", t0)},
				Sessions:    alive("a", "b"),
				Leases:      map[string]*Lease{"p0": releasedLease("p0", "b", 3, now.Add(-time.Second))},
			},
			want: []string{"p0: assigning(b) avoid= b released the lease (term 3)"},
		},
		{
			name: "assigning confirmed by the lease",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigning, "b", "", now.Add(-time.Second))},
				Sessions:    alive("b"),
				Leases:      map[string]*Lease{"p0": liveLease("p0", "b", 4, now.Add(9*time.Second))},
			},
			want: []string{"p0: assigned(b) avoid= b took the lease (term 4)"},
		},
		{
			name: "assigning while the previous holder is live: wait, and no balancing meanwhile",
			view: clusterView{
				Assignments: []Assignment{
					asg("p0", PChannelAssigning, "b", "", now.Add(-time.Hour)),
					asg("p1", PChannelAssigned, "a", "", t0), asg("p2", PChannelAssigned, "a", "", t0), asg("p3", PChannelAssigned, "a", "", t0),
				},
				Sessions: alive("a", "b", "c"),
				Leases: map[string]*Lease{"p0": liveLease("p0", "a", 2, now.Add(time.Second)),
					"p1": liveLease("p1", "a", 1, now.Add(time.Second)), "p2": liveLease("p2", "a", 1, now.Add(time.Second)),
					"p3": liveLease("p3", "a", 1, now.Add(time.Second))},
			},
		},
		{
			name: "stuck clock starts when the lease became free: not yet",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigning, "b", "", now.Add(-time.Hour))},
				Sessions:    alive("b", "c"),
				// free since now − 30s + 1ms
				Leases: map[string]*Lease{"p0": liveLease("p0", "a", 2, now.Add(-testPolicy.StuckTimeout+time.Millisecond-testPolicy.LeaseMargin))},
			},
		},
		{
			name: "stuck clock starts when the lease became free: stuck",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigning, "b", "", now.Add(-time.Hour))},
				Sessions:    alive("b", "c"),
				Leases:      map[string]*Lease{"p0": liveLease("p0", "a", 2, now.Add(-testPolicy.StuckTimeout-time.Millisecond-testPolicy.LeaseMargin))},
			},
			want: []string{"p0: assigning(c) avoid=b stuck: b did not take the free lease within 30s"},
		},
		{
			name: "assigning to a dead node that never took the lease",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigning, "a", "", now.Add(-time.Second))},
				Sessions:    append(alive("b"), expired),
			},
			want: []string{"p0: assigning(b) avoid= a is not alive and did not take the lease"},
		},
		{
			name: "assigning to a dead node that holds the lease: confirmed anyway",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigning, "a", "", now.Add(-time.Second))},
				Sessions:    append(alive("b"), expired),
				Leases:      map[string]*Lease{"p0": liveLease("p0", "a", 2, now.Add(time.Second))},
			},
			want: []string{"p0: assigned(a) avoid= a took the lease (term 2)"},
		},
		{
			name: "assigning with TakeOver: in transit while the old holder's lease is live",
			view: clusterView{
				Assignments: []Assignment{takeOver(asg("p0", PChannelAssigning, "b", "a", now.Add(-time.Second)))},
				Sessions:    alive("a", "b"),
				Leases:      map[string]*Lease{"p0": liveLease("p0", "a", 3, now.Add(5*time.Second))},
			},
		},
		{
			name: "assigning with TakeOver: stuck StuckTimeout after the move, though the old lease never lapsed",
			view: clusterView{
				Assignments: []Assignment{takeOver(asg("p0", PChannelAssigning, "b", "a", now.Add(-testPolicy.StuckTimeout-time.Millisecond)))},
				Sessions:    alive("a", "b", "c"),
				Leases:      map[string]*Lease{"p0": liveLease("p0", "a", 3, now.Add(5*time.Second))},
			},
			want: []string{"p0: assigning(a) avoid=b stuck: b did not take the lease over within 30s"},
		},
		{
			name: "assigning with TakeOver: confirmed once the target holds the lease",
			view: clusterView{
				Assignments: []Assignment{takeOver(asg("p0", PChannelAssigning, "b", "a", now.Add(-time.Second)))},
				Sessions:    alive("a", "b"),
				Leases:      map[string]*Lease{"p0": liveLease("p0", "b", 4, now.Add(5*time.Second))},
			},
			want: []string{"p0: assigned(b) avoid= b took the lease (term 4)"},
		},
		{
			name: "unassigning: wait while the old holder holds",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelUnassigning, "b", "a", now.Add(-time.Second))},
				Sessions:    alive("a", "b"),
				Leases:      map[string]*Lease{"p0": liveLease("p0", "a", 2, now.Add(time.Second))},
			},
		},
		{
			name: "unassigning: released, the target takes over",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelUnassigning, "b", "a", now.Add(-time.Second))},
				Sessions:    alive("a", "b"),
				Leases:      map[string]*Lease{"p0": releasedLease("p0", "a", 2, now)},
			},
			want: []string{"p0: assigning(b) avoid= a let go"},
		},
		{
			name: "unassigning: released, the target died",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelUnassigning, "x", "a", now.Add(-time.Second))},
				Sessions:    alive("a", "c"),
				Leases:      map[string]*Lease{"p0": releasedLease("p0", "a", 2, now)},
			},
			want: []string{"p0: assigning(a) avoid= a let go; x is not alive"},
		},
		{
			name: "no live node: lease gone goes to the remaining pool, unassigned stays",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigned, "a", "", t0), asg("p1", PChannelUnassigned, "", "", t0)},
				Sessions:    []Session{expired},
				Leases:      map[string]*Lease{"p0": releasedLease("p0", "a", 2, now)},
			},
			want: []string{"p0: unassigned avoid= no live node: a released the lease (term 2)"},
		},
		{
			name: "balance skips a quarantined node",
			view: clusterView{
				Assignments: []Assignment{
					asg("p0", PChannelAssigned, "a", "", t0), asg("p1", PChannelAssigned, "a", "", t0),
					asg("p2", PChannelAssigned, "a", "", t0),
					{PChannel: "p3", State: PChannelAssigned, Node: "a", Since: t0, Avoid: "b", AvoidUntil: now, Version: 2},
				},
				Sessions: alive("a", "b", "c"),
				Leases: map[string]*Lease{"p0": liveLease("p0", "a", 1, now), "p1": liveLease("p1", "a", 1, now),
					"p2": liveLease("p2", "a", 1, now), "p3": liveLease("p3", "a", 1, now)},
			},
			want: []string{"p2: assigning(c) from=a takeover avoid= balance: a holds 3, c holds 1",
				"p3: assigning(c) from=a takeover avoid=b balance: a holds 4, c holds 0"},
		},
		{
			name: "balanced within one: nothing moves",
			view: clusterView{
				Assignments: []Assignment{asg("p0", PChannelAssigned, "a", "", t0), asg("p1", PChannelAssigned, "a", "", t0),
					asg("p2", PChannelAssigned, "b", "", t0)},
				Sessions: alive("a", "b"),
				Leases: map[string]*Lease{"p0": liveLease("p0", "a", 1, now), "p1": liveLease("p1", "a", 1, now),
					"p2": liveLease("p2", "b", 1, now)},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decideAssignments(tc.view, now, testPolicy)
			var lines []string
			for _, a := range got {
				if !a.Since.Equal(now) {
					t.Errorf("%s: since %v, want now", a.PChannel, a.Since)
				}
				prev := 0
				for _, b := range tc.view.Assignments {
					if b.PChannel == a.PChannel {
						prev = int(b.Version)
					}
				}
				if int(a.Version) != prev+1 {
					t.Errorf("%s: version %d after %d", a.PChannel, a.Version, prev)
				}
				line := fmt.Sprintf("%s: %s(%s)", a.PChannel, a.State, a.Node)
				if a.State == PChannelUnassigned {
					line = fmt.Sprintf("%s: %s", a.PChannel, a.State)
				}
				if a.From != "" {
					line += " from=" + a.From
				}
				if a.TakeOver {
					line += " takeover"
				}
				lines = append(lines, fmt.Sprintf("%s avoid=%s %s", line, a.Avoid, a.Reason))
			}
			if strings.Join(lines, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("changes:\n  %s\nwant:\n  %s", strings.Join(lines, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestLeastLoaded(t *testing.T) {
	load := map[string]int{"a": 1, "b": 0, "c": 0}
	tests := []struct {
		live        []string
		quarantined map[string]bool
		failed      string
		want        string
	}{
		{[]string{"a", "b", "c"}, nil, "", "b"},
		{[]string{"a", "b", "c"}, nil, "b", "c"},
		{[]string{"a", "b", "c"}, map[string]bool{"c": true}, "b", "a"},
		{[]string{"b"}, nil, "b", "b"},                             // the failed node is the only one
		{[]string{"b", "c"}, map[string]bool{"c": true}, "b", "b"}, // everyone is to be avoided: least loaded
		{nil, nil, "", ""},
	}
	for _, tc := range tests {
		if got := leastLoaded(tc.live, load, tc.quarantined, tc.failed); got != tc.want {
			t.Errorf("leastLoaded(%v, quarantined %v, failed %q) = %q, want %q", tc.live, tc.quarantined, tc.failed, got, tc.want)
		}
	}
}

// TestSettled: a balancer backs off only while every pchannel is assigned
// to a live node that holds or parked its lease.
func TestSettled(t *testing.T) {
	now := t0.Add(time.Hour)
	a, b := sess("a", now.Add(-time.Second)), sess("b", now.Add(-time.Second))
	dead := sess("a", now.Add(-testPolicy.SessionTTL-time.Millisecond))
	held := func(p string) *Lease { return liveLease(p, "a", 1, now.Add(5*time.Second)) }
	parked := func(p string) *Lease { return releasedLease(p, "a", 1, now.Add(-time.Hour)) }
	assigned := []Assignment{asg("p0", PChannelAssigned, "a", "", t0), asg("p1", PChannelAssigned, "a", "", t0)}
	tests := []struct {
		name string
		view clusterView
		want bool
	}{
		{"held and parked by a live node", clusterView{assigned, []Session{a, b}, map[string]*Lease{"p0": held("p0"), "p1": parked("p1")}}, true},
		{"the node's session lapsed", clusterView{assigned, []Session{dead, b}, map[string]*Lease{"p0": held("p0"), "p1": parked("p1")}}, false},
		{"a lease expired", clusterView{assigned, []Session{a}, map[string]*Lease{"p0": liveLease("p0", "a", 1, now.Add(-time.Minute)), "p1": parked("p1")}}, false},
		{"a lease another node released", clusterView{assigned, []Session{a, b}, map[string]*Lease{"p0": held("p0"), "p1": releasedLease("p1", "b", 1, now)}}, false},
		{"in transit", clusterView{[]Assignment{asg("p0", PChannelAssigning, "a", "", now)}, []Session{a}, map[string]*Lease{"p0": parked("p0")}}, false},
		{"no lease", clusterView{assigned[:1], []Session{a}, map[string]*Lease{}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := settled(tc.view, now, testPolicy); got != tc.want {
				t.Errorf("settled = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestNextCheck: the balancer's pause doubles to MaxCheckInterval while
// rounds are quiet and drops back to CheckInterval after one that is not.
func TestNextCheck(t *testing.T) {
	cfg := Config{}.withDefaults()
	wait := cfg.CheckInterval
	var got []time.Duration
	for range 6 {
		wait = nextCheck(wait, true, cfg)
		got = append(got, wait)
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second, 16 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("quiet pauses %v, want %v", got, want)
	}
	if w := nextCheck(wait, false, cfg); w != cfg.CheckInterval {
		t.Fatalf("pause after a busy round %v, want %v", w, cfg.CheckInterval)
	}
}
