package coordinator

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The assignment scripts in testdata/assign/*.txt drive decideAssignments
// together with the pure lease decisions, with no store: nodes heartbeat,
// take, renew and release leases the way Node and the Writer do, and a
// balancer decides every simulated second. The transcript is compared with
// the .golden file beside the script (rewrite with -update).
//
// Commands:
//
//	pchannels p0 p1 ...     new pchannels (unassigned)
//	up a b ...              nodes that heartbeat, renew, take what is assigned to them, let go of the rest
//	freeze a ...            the process stops: no heartbeat, no renew, nothing
//	mute a ...              heartbeats stop (session expires) but its writers keep renewing
//	stuck a ...             heartbeats and renews, but never takes a new lease
//	stop a ...              graceful shutdown: releases its leases, session stopped
//	run 5s                  that many 1s steps: nodes act, then the balancer decides; changes are printed
//	show                    the assignment and lease table
//
// Timing: lease TTL 10s and margin 2.5s, session TTL 10s, stuck timeout
// 30s (the defaults).

type simNodeMode string

const (
	nodeUp     simNodeMode = "up"
	nodeFrozen simNodeMode = "frozen"
	nodeMute   simNodeMode = "mute"
	nodeStuck  simNodeMode = "stuck"
	nodeStop   simNodeMode = "stopped"
)

type assignSim struct {
	now      time.Time
	leaseCfg LeaseConfig
	pol      assignPolicy
	assigns  map[string]Assignment
	sessions map[string]Session
	modes    map[string]simNodeMode
	leases   map[string]*Lease
	tookOver map[string]uint64 // pchannel → the TakeOver assignment version a node acted on
	nonce    int
	out      *bytes.Buffer
}

func newAssignSim(out *bytes.Buffer) *assignSim {
	cfg := Config{}.withDefaults()
	lc := LeaseConfig{}.withDefaults()
	return &assignSim{
		now:      t0,
		leaseCfg: lc,
		pol: assignPolicy{SessionTTL: cfg.SessionTTL, StuckTimeout: cfg.StuckTimeout, LeaseMargin: lc.Margin,
			Quarantine: quarantineFactor * cfg.StuckTimeout},
		assigns:  map[string]Assignment{},
		sessions: map[string]Session{},
		modes:    map[string]simNodeMode{},
		tookOver: map[string]uint64{},
		leases:   map[string]*Lease{},
		out:      out,
	}
}

func (s *assignSim) at() string { return fmt.Sprintf("+%v", s.now.Sub(t0)) }

func (s *assignSim) exec(t *testing.T, cmd string, args []string) {
	t.Helper()
	switch cmd {
	case "pchannels":
		for _, p := range args {
			s.assigns[p] = newAssignment(p, s.now)
		}
	case "up", "freeze", "mute", "stuck", "stop":
		mode := map[string]simNodeMode{"up": nodeUp, "freeze": nodeFrozen, "mute": nodeMute, "stuck": nodeStuck, "stop": nodeStop}[cmd]
		for _, n := range args {
			prev, known := s.modes[n]
			s.modes[n] = mode
			switch {
			case (mode == nodeUp || mode == nodeMute || mode == nodeStuck) && (!known || prev == nodeStop):
				cur, ok := s.sessions[n]
				var curp *Session
				if ok {
					curp = &cur
				}
				s.sessions[n] = decideRegister(curp, n, "http://"+n, fmt.Sprintf("%s-%s", n, s.at()), s.now)
			case mode == nodeStop:
				s.stopNode(t, n)
			}
		}
	case "run":
		d, err := time.ParseDuration(args[0])
		if err != nil {
			t.Fatal(err)
		}
		for end := s.now.Add(d); s.now.Before(end); {
			s.now = s.now.Add(time.Second)
			s.nodesAct(t)
			s.decide()
		}
	case "show":
		s.show()
	default:
		t.Fatalf("unknown command %q", cmd)
	}
}

func (s *assignSim) stopNode(t *testing.T, n string) {
	for _, p := range s.sortedLeases() {
		l := s.leases[p]
		if l.Holder == n && !l.Released {
			rel, err := decideRelease(*l, l.Term, l.Nonce, l.Tail, 0, s.now)
			if err != nil {
				t.Fatal(err)
			}
			s.leases[p] = &rel
		}
	}
	sess := s.sessions[n]
	stopped, err := decideStop(&sess, n, sess.Incarnation, s.now)
	if err != nil {
		t.Fatal(err)
	}
	s.sessions[n] = stopped
}

// nodesAct is one second of every node's life.
func (s *assignSim) nodesAct(t *testing.T) {
	for _, n := range slices.Sorted(maps.Keys(s.modes)) {
		mode := s.modes[n]
		if mode == nodeFrozen || mode == nodeStop {
			continue
		}
		if mode != nodeMute {
			sess := s.sessions[n]
			hb, err := decideHeartbeat(&sess, n, sess.Incarnation, s.now)
			if err != nil {
				t.Fatal(err)
			}
			s.sessions[n] = hb
		}
		for _, p := range slices.Sorted(maps.Keys(s.assigns)) {
			a := s.assigns[p]
			l := s.leases[p]
			mineLease := l != nil && l.Holder == n && !l.Released && !s.now.After(l.Expires)
			switch {
			case mineLease && !a.targets(n):
				rel, err := decideRelease(*l, l.Term, l.Nonce, l.Tail, 0, s.now)
				if err != nil {
					t.Fatal(err)
				}
				s.leases[p] = &rel
			case mineLease:
				ren, err := decideRenew(*l, l.Term, l.Nonce, s.now, s.leaseCfg)
				if err != nil {
					t.Fatal(err)
				}
				s.leases[p] = &ren
			case a.targets(n) && mode != nodeStuck && a.State == PChannelAssigning && a.TakeOver && s.tookOver[p] != a.Version:
				// A balancing move: Node.watch calls Holder.TakeOver once
				// for the version.
				s.nonce++
				got, err := decideTakeover(l, p, n, fmt.Sprintf("n%d", s.nonce), s.now, s.leaseCfg)
				if err == nil {
					s.leases[p] = &got
					s.tookOver[p] = a.Version
					fmt.Fprintf(s.out, "%s %s: %s takes the lease over, term %d\n", s.at(), p, n, got.Term)
				}
			case a.targets(n) && mode != nodeStuck:
				s.nonce++
				got, err := decideAcquire(l, p, n, fmt.Sprintf("n%d", s.nonce), s.now, s.leaseCfg)
				if err == nil {
					s.leases[p] = &got
					fmt.Fprintf(s.out, "%s %s: %s acquires term %d\n", s.at(), p, n, got.Term)
				}
			}
		}
	}
}

func (s *assignSim) decide() {
	view := clusterView{Leases: s.leases}
	for _, p := range slices.Sorted(maps.Keys(s.assigns)) {
		view.Assignments = append(view.Assignments, s.assigns[p])
	}
	for _, n := range slices.Sorted(maps.Keys(s.sessions)) {
		view.Sessions = append(view.Sessions, s.sessions[n])
	}
	for _, next := range decideAssignments(view, s.now, s.pol) {
		prev := s.assigns[next.PChannel]
		if next.Version != prev.Version+1 || !next.Since.Equal(s.now) {
			fmt.Fprintf(s.out, "BAD CHANGE %+v after %+v\n", next, prev)
		}
		fmt.Fprintf(s.out, "%s %s: %s -> %s (%s)\n", s.at(), next.PChannel, stateOf(prev), stateOf(next), next.Reason)
		s.assigns[next.PChannel] = next
	}
}

func stateOf(a Assignment) string {
	switch a.State {
	case PChannelUnassigned:
		return "unassigned"
	case PChannelUnassigning:
		return fmt.Sprintf("unassigning(%s->%s)", a.From, a.Node)
	case PChannelAssigning:
		if a.TakeOver {
			return fmt.Sprintf("assigning(%s, take over from %s)", a.Node, a.From)
		}
		return fmt.Sprintf("assigning(%s)", a.Node)
	default:
		return fmt.Sprintf("%s(%s)", a.State, a.Node)
	}
}

func (s *assignSim) show() {
	count := map[string]int{}
	for _, p := range slices.Sorted(maps.Keys(s.assigns)) {
		a := s.assigns[p]
		lease := "no lease"
		if l := s.leases[p]; l != nil {
			switch h := leaseHolder(l, s.now, s.leaseCfg.Margin); {
			case h != "":
				lease = fmt.Sprintf("held by %s term %d", h, l.Term)
			case l.Released:
				lease = fmt.Sprintf("released by %s term %d", l.Holder, l.Term)
			default:
				lease = fmt.Sprintf("expired, was %s term %d", l.Holder, l.Term)
			}
		}
		if a.State == PChannelAssigned {
			count[a.Node]++
		}
		fmt.Fprintf(s.out, "  %s %-26s %s\n", p, stateOf(a), lease)
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(s.sessions)) {
		alive := "dead"
		if s.sessions[n].Alive(s.now, s.pol.SessionTTL) {
			alive = "alive"
		}
		parts = append(parts, fmt.Sprintf("%s=%d(%s,%s)", n, count[n], s.modes[n], alive))
	}
	fmt.Fprintf(s.out, "  nodes: %s\n", strings.Join(parts, " "))
}

func (s *assignSim) sortedLeases() []string { return slices.Sorted(maps.Keys(s.leases)) }

func TestAssignmentScripts(t *testing.T) {
	scripts, err := filepath.Glob(filepath.Join("testdata", "assign", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) == 0 {
		t.Fatal("no scripts in testdata/assign")
	}
	for _, path := range scripts {
		name := strings.TrimSuffix(filepath.Base(path), ".txt")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			sim := newAssignSim(&out)
			sc := bufio.NewScanner(bytes.NewReader(src))
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" || strings.HasPrefix(line, "#") {
					fmt.Fprintln(&out, line)
					continue
				}
				fmt.Fprintf(&out, "> %s\n", line)
				f := strings.Fields(line)
				sim.exec(t, f[0], f[1:])
			}
			golden := strings.TrimSuffix(path, ".txt") + ".golden"
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("transcript differs from %s (run with -update and review the diff):\n%s", golden, out.String())
			}
			if strings.Contains(out.String(), "BAD CHANGE") {
				t.Fatal("a change did not bump the version or set Since")
			}
			checkSimInvariants(t, sim)
		})
	}
}

// checkSimInvariants: whatever the script did, an assigned pchannel is
// held by its node or its lease is free, and the lease terms only grew.
func checkSimInvariants(t *testing.T, s *assignSim) {
	for p, a := range s.assigns {
		h := leaseHolder(s.leases[p], s.now, s.leaseCfg.Margin)
		if a.State == PChannelAssigned && h != "" && h != a.Node {
			t.Errorf("%s assigned to %s but held by %s", p, a.Node, h)
		}
	}
}
