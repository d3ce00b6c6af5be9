package coordinator

import (
	"fmt"
	"slices"
	"time"
)

// The assignment decisions are one pure function of what a balancer read
// (every assignment record, every session, the lease records it needs) and
// its clock. Balancer applies each changed record with a compare-and-swap
// against the ETag it read; a lost race drops that change until the next
// round decides again from fresh records. Safety never rests on these
// decisions: two nodes told to hold one pchannel still get one lease at a
// time (the lease CAS), and the older writer is fenced in the WAL.

// assignPolicy is what the decisions need of the configuration.
type assignPolicy struct {
	SessionTTL   time.Duration
	StuckTimeout time.Duration
	LeaseMargin  time.Duration // a lease is free after Expires + LeaseMargin, or once released
	// Quarantine: how long a stuck node receives nothing by balancing.
	Quarantine time.Duration
}

// quarantineFactor sets assignPolicy.Quarantine to this many stuck
// timeouts: a stuck node costs its pchannels one stuck timeout of
// unavailability, then is left alone for this long before balancing tries
// it again.
const quarantineFactor = 4

// clusterView is what one round decides from.
type clusterView struct {
	Assignments []Assignment // one per pchannel
	Sessions    []Session
	// Leases by pchannel; a missing or nil entry: no lease record.
	Leases map[string]*Lease
}

// leaseHolder returns the holder of l if l cannot be acquired by anyone else
// at now (not released, and now ≤ Expires + margin, the rule of
// decideAcquire); "" if the lease is free.
func leaseHolder(l *Lease, now time.Time, margin time.Duration) string {
	if l == nil || l.Released || now.After(l.Expires.Add(margin)) {
		return ""
	}
	return l.Holder
}

// parkedBy reports whether node released l while keeping its pchannel:
// a `cairn serve` pool closes an idle writer (system.Config.IdleRelease),
// which releases the lease with its tail, and retakes the lease on the
// next append. Counted as parked only while node's session is alive.
func parkedBy(l *Lease, node string) bool {
	return l != nil && l.Released && l.Holder == node && node != ""
}

// keeper returns the node that keeps l's pchannel at now for a balancer
// that cached l: its live holder, or the holder that parked it; "" if
// neither.
func keeper(l *Lease, now time.Time, margin time.Duration) string {
	if h := leaseHolder(l, now, margin); h != "" {
		return h
	}
	if l != nil && l.Released {
		return l.Holder
	}
	return ""
}

// settled reports whether nothing in v waits on time passing: every
// pchannel is assigned to a live node that holds its lease or parked it.
// Only another process's write (a node joining or leaving, a lease taken)
// or a session lapsing changes what such a view decides, so a balancer
// may look less often (Config.MaxCheckInterval).
func settled(v clusterView, now time.Time, pol assignPolicy) bool {
	alive := make(map[string]bool)
	for _, s := range v.Sessions {
		if s.Alive(now, pol.SessionTTL) {
			alive[s.Node] = true
		}
	}
	for _, a := range v.Assignments {
		l := v.Leases[a.PChannel]
		if a.State != PChannelAssigned || !alive[a.Node] ||
			(leaseHolder(l, now, pol.LeaseMargin) != a.Node && !parkedBy(l, a.Node)) {
			return false
		}
	}
	return true
}

// freeSince is when l became free: its release, or its expiry plus the
// margin. The zero time if there is no lease.
func freeSince(l *Lease, margin time.Duration) time.Time {
	switch {
	case l == nil:
		return time.Time{}
	case l.Released:
		return l.Expires
	default:
		return l.Expires.Add(margin)
	}
}

// decideAssignments returns the assignment records that change, in
// pchannel order, each with Version+1, Since = now and a Reason:
//
//   - unassigned → assigning(least-loaded live node), as soon as one is alive;
//   - assigning(N) → assigned(N) once N holds the lease;
//   - assigning(N) → assigning(M) when N is not alive and does not hold the
//     lease, or when N has not taken the lease StuckTimeout after it became
//     free ("stuck");
//   - assigned(N) → assigning(M) when the lease is free (expired plus the
//     margin, or released): an expired session alone moves nothing while
//     its lease is live (docs/protocol.md, "Broadcast and coordinator" rule 4);
//     a lease N released while its session is alive and not stopped is
//     parked (parkedBy): N keeps the pchannel and retakes the lease on
//     demand, and balancing may move it like a held one;
//   - unassigning(N→M) → assigning(M) once N's lease is free (records of
//     older balancers; balancing no longer writes unassigning);
//   - any of these → unassigned when no node is alive to take it;
//   - when nothing is in transit, assigned(N) → assigning(M) with
//     TakeOver moves one pchannel at a time from the most to the least
//     loaded live node until their counts differ by at most one; M takes
//     the live lease over (a forced takeover), and is stuck if it has not
//     StuckTimeout after the move.
//
// M is the live node with the fewest pchannels (counting assigning and
// unassigning targets), the first by ID on a tie, avoiding the node that
// failed and quarantined nodes while another node is alive. A stuck node
// is quarantined (Assignment.Avoid) for pol.Quarantine: balancing moves
// nothing to it meanwhile, so it does not keep attracting pchannels. A node
// whose lease merely lapsed is only avoided for that one reassignment.
func decideAssignments(v clusterView, now time.Time, pol assignPolicy) []Assignment {
	alive := make(map[string]bool)
	var live []string
	for _, s := range v.Sessions {
		if s.Alive(now, pol.SessionTTL) && !alive[s.Node] {
			alive[s.Node] = true
			live = append(live, s.Node)
		}
	}
	slices.Sort(live)
	quarantined := make(map[string]bool)
	for _, a := range v.Assignments {
		if a.Avoid != "" && alive[a.Avoid] && !now.After(a.AvoidUntil) {
			quarantined[a.Avoid] = true
		}
	}
	load := make(map[string]int, len(live))
	count := func(node string) {
		if alive[node] {
			load[node]++
		}
	}

	as := slices.Clone(v.Assignments)
	slices.SortFunc(as, func(a, b Assignment) int {
		switch {
		case a.PChannel < b.PChannel:
			return -1
		case a.PChannel > b.PChannel:
			return 1
		}
		return 0
	})

	type need struct {
		a          Assignment
		avoid      string // the node that failed it, if any: not chosen again if another is alive
		quarantine bool   // avoid is stuck: keep balancing away from it for pol.Quarantine
		because    string
	}
	var (
		out       []Assignment
		needs     []need
		movable   = make(map[string][]Assignment) // steady assigned pchannels, by node
		inTransit bool
	)
	change := func(a Assignment, state AssignmentState, node, from, reason string) Assignment {
		next := a
		next.State, next.Node, next.From, next.Reason = state, node, from, reason
		next.TakeOver = false
		next.Since = now
		next.Version = a.Version + 1
		return next
	}

	for _, a := range as {
		l := v.Leases[a.PChannel]
		holder := leaseHolder(l, now, pol.LeaseMargin)
		switch a.State {
		case PChannelUnassigned:
			needs = append(needs, need{a: a, because: "taken from the remaining pool"})
		case PChannelAssigning:
			stuckAt := later(a.Since, freeSince(l, pol.LeaseMargin)).Add(pol.StuckTimeout)
			if a.TakeOver {
				stuckAt = a.Since.Add(pol.StuckTimeout) // it need not wait for the lease
			}
			switch {
			case holder == a.Node:
				out = append(out, change(a, PChannelAssigned, a.Node, "", fmt.Sprintf("%s took the lease (term %d)", a.Node, l.Term)))
				count(a.Node)
			case holder != "" && !a.TakeOver:
				// The previous holder still has it: wait for its release or expiry.
				count(a.Node)
				inTransit = true
			case !alive[a.Node]:
				needs = append(needs, need{a: a, avoid: a.Node, because: fmt.Sprintf("%s is not alive and did not take the lease", a.Node)})
			case now.After(stuckAt):
				what := "take the free lease"
				if a.TakeOver {
					what = "take the lease over"
				}
				needs = append(needs, need{a: a, avoid: a.Node, quarantine: true,
					because: fmt.Sprintf("stuck: %s did not %s within %v", a.Node, what, pol.StuckTimeout)})
			default:
				count(a.Node)
				inTransit = true
			}
		case PChannelAssigned:
			switch {
			case holder == a.Node, parkedBy(l, a.Node) && alive[a.Node]:
				count(a.Node)
				if alive[a.Node] {
					movable[a.Node] = append(movable[a.Node], a)
				}
			case holder == "":
				needs = append(needs, need{a: a, avoid: a.Node, because: leaseGone(l, a.Node)})
			case alive[holder] && !alive[a.Node]:
				// A live node took the lease over from a dead one (a
				// restarted `cairn serve` taking back its previous
				// incarnation's pchannels): its acquire is the
				// confirmation; it keeps them.
				out = append(out, change(a, PChannelAssigned, holder, "", fmt.Sprintf("%s took the lease over from %s, which is not alive (term %d)", holder, a.Node, l.Term)))
				count(holder)
			default:
				// Someone else holds it (a late acquirer); it lets go when it
				// sees it is not assigned.
				count(a.Node)
				inTransit = true
			}
		case PChannelUnassigning:
			switch {
			case holder == a.From:
				count(a.Node)
				inTransit = true
			case alive[a.Node]:
				out = append(out, change(a, PChannelAssigning, a.Node, "", fmt.Sprintf("%s let go", a.From)))
				count(a.Node)
				inTransit = true
			default:
				needs = append(needs, need{a: a, because: fmt.Sprintf("%s let go; %s is not alive", a.From, a.Node)})
			}
		}
	}

	for _, n := range needs {
		a := n.a
		if n.quarantine {
			a.Avoid, a.AvoidUntil = n.avoid, now.Add(pol.Quarantine)
			quarantined[n.avoid] = true
		}
		target := leastLoaded(live, load, quarantined, n.avoid)
		if target == "" {
			if a.State != PChannelUnassigned {
				out = append(out, change(a, PChannelUnassigned, "", "", "no live node: "+n.because))
			}
			continue
		}
		out = append(out, change(a, PChannelAssigning, target, "", n.because))
		load[target]++
		inTransit = true
	}

	if !inTransit {
		out = append(out, balance(live, load, quarantined, movable, change)...)
	}
	slices.SortFunc(out, func(a, b Assignment) int {
		switch {
		case a.PChannel < b.PChannel:
			return -1
		case a.PChannel > b.PChannel:
			return 1
		}
		return 0
	})
	return out
}

// balance moves steady pchannels, one by one, from the most loaded live
// node (the first by ID on a tie) to the least loaded one that is not
// quarantined until the counts differ by at most one. It moves the last
// pchannel by name of a node. A move is assigning(M) with TakeOver: M takes
// the lease over from N at once, fencing N's writer, rather than waiting
// for N to notice and release (docs/protocol.md, "Broadcast and
// coordinator" rule 4).
func balance(live []string, load map[string]int, quarantined map[string]bool, movable map[string][]Assignment,
	change func(Assignment, AssignmentState, string, string, string) Assignment) []Assignment {
	var out []Assignment
	for {
		hi, lo := "", ""
		for _, n := range live {
			if hi == "" || load[n] > load[hi] {
				hi = n
			}
			if !quarantined[n] && (lo == "" || load[n] < load[lo]) {
				lo = n
			}
		}
		if lo == "" || load[hi]-load[lo] <= 1 || len(movable[hi]) == 0 {
			break
		}
		ms := movable[hi]
		a := ms[len(ms)-1]
		movable[hi] = ms[:len(ms)-1]
		next := change(a, PChannelAssigning, lo, hi,
			fmt.Sprintf("balance: %s holds %d, %s holds %d", hi, load[hi], lo, load[lo]))
		next.TakeOver = true
		out = append(out, next)
		load[hi]--
		load[lo]++
	}
	return out
}

// leastLoaded returns the live node with the lowest load, the first by ID on
// a tie, preferring nodes that are neither failed nor quarantined; "" if no
// node is live.
func leastLoaded(live []string, load map[string]int, quarantined map[string]bool, failed string) string {
	best, fallback := "", ""
	for _, n := range live {
		if fallback == "" || load[n] < load[fallback] {
			fallback = n
		}
		if n == failed || quarantined[n] {
			continue
		}
		if best == "" || load[n] < load[best] {
			best = n
		}
	}
	if best == "" {
		return fallback
	}
	return best
}

// leaseGone explains why an assigned pchannel's lease is free.
func leaseGone(l *Lease, node string) string {
	switch {
	case l == nil:
		return fmt.Sprintf("%s has no lease record", node)
	case l.Released:
		return fmt.Sprintf("%s released the lease (term %d)", l.Holder, l.Term)
	default:
		return fmt.Sprintf("lease of %s expired (term %d)", l.Holder, l.Term)
	}
}
