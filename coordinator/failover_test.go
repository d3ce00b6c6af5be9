package coordinator_test

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// TestClusterMemory and TestClusterMinIO run the same life of a cluster:
// several balancers at once (three on memory, two on MinIO), three nodes sharing six pchannels, producers
// appending to eight vchannels; then one node freezes (heartbeats, lease
// renewals and PUTs all stop) and its pchannels move to the others, whose
// writers fence it; a vchannel is dropped; a fourth node joins and gets its
// share; the frozen node thaws as a zombie and lets go. At the end every
// acked append is delivered exactly once, no two lease terms of a pchannel
// ever overlapped, and the idle request rates are reported.

func TestClusterMemory(t *testing.T) {
	runCluster(t, objstore.NewMemory(), clusterTimings{
		ttl: 800 * time.Millisecond, margin: 250 * time.Millisecond,
		renew: 150 * time.Millisecond, put: 100 * time.Millisecond, get: 100 * time.Millisecond,
		heartbeat: 100 * time.Millisecond, sessionTTL: 500 * time.Millisecond, poll: 50 * time.Millisecond,
		check: 50 * time.Millisecond, stuck: 2 * time.Second, request: 100 * time.Millisecond,
		appendTimeout: time.Second, pace: 5 * time.Millisecond,
	}, 3, time.Second)
}

// clusterDefaults runs TestClusterMinIO with the production defaults
// (10 s leases, 2 s node polls, 1 s balancer rounds, ...), to measure
// failover and idle request rates as a deployment sees them (about two
// minutes; make test uses the short test timings).
var clusterDefaults = flag.Bool("cluster.defaults", false, "run TestClusterMinIO with the default timings")

func TestClusterMinIO(t *testing.T) {
	if *clusterDefaults {
		runCluster(t, testkit.MinIOStore(t, "coordinator"), clusterTimings{
			ttl: coordinator.DefaultLeaseTTL, margin: coordinator.DefaultLeaseMargin,
			renew: 3 * time.Second, put: sl.DefaultPutTimeout, get: coordinator.DefaultRequestTimeout,
			heartbeat: coordinator.DefaultHeartbeatInterval, sessionTTL: coordinator.DefaultSessionTTL,
			poll: coordinator.DefaultPollInterval, check: coordinator.DefaultCheckInterval,
			stuck: coordinator.DefaultStuckTimeout, request: coordinator.DefaultRequestTimeout,
			appendTimeout: 20 * time.Second, pace: 50 * time.Millisecond,
		}, 2, 10*time.Second)
		return
	}
	// docs/protocol.md, "Parameters": R ≤ m − skew (one clock here, skew 0;
	// 100ms to spare for a loaded machine) and I + 2R ≤ TTL − m:
	// 150ms + 2×250ms ≤ 1s − 350ms.
	runCluster(t, testkit.MinIOStore(t, "coordinator"), clusterTimings{
		ttl: time.Second, margin: 350 * time.Millisecond,
		renew: 150 * time.Millisecond, put: 250 * time.Millisecond, get: 250 * time.Millisecond,
		heartbeat: 200 * time.Millisecond, sessionTTL: time.Second, poll: 200 * time.Millisecond,
		check: 200 * time.Millisecond, stuck: 3 * time.Second, request: 250 * time.Millisecond,
		appendTimeout: 1500 * time.Millisecond, pace: 50 * time.Millisecond,
	}, 2, 2*time.Second)
}

func runCluster(t *testing.T, store objstore.Store, tm clusterTimings, balancers int, phase time.Duration) {
	ctx := context.Background()
	pchannels := []string{"p0", "p1", "p2", "p3", "p4", "p5"}
	c := newCluster(t, store, tm, pchannels)
	for range balancers {
		c.startBalancer()
	}
	for _, id := range []string{"node-a", "node-b", "node-c"} {
		c.startNode(id)
	}
	fair := func(nodes ...string) func() (bool, string) {
		return func() (bool, string) {
			h := c.holders()
			n := counts(h)
			for _, id := range nodes {
				if n[id] != len(pchannels)/len(nodes) || len(c.node(id).node.Held()) != n[id] {
					return false, fmt.Sprint(h)
				}
			}
			if n[""] != 0 {
				return false, fmt.Sprint(h)
			}
			// The records agree: every pchannel assigned to its holder.
			as, err := c.bals[0].b.Assignments(ctx)
			if err != nil {
				return false, err.Error()
			}
			for _, a := range as {
				if a.State != coordinator.PChannelAssigned || a.Node != h[a.PChannel] {
					return false, fmt.Sprintf("%v; %s is %s to %s", h, a.PChannel, a.State, a.Node)
				}
			}
			return true, ""
		}
	}
	start := c.waitFor("initial assignment", 60*time.Second, fair("node-a", "node-b", "node-c"))
	t.Logf("initial assignment: every pchannel held, 2 per node, after %v", start.Round(time.Millisecond))

	idle := measureIdle(t, c, phase)

	// vchannels: eight with producers, one to drop later.
	var producers []*producer
	for i := range 8 {
		v := fmt.Sprintf("v%d", i)
		if _, err := c.reg.Create(ctx, c.wal, v, ""); err != nil {
			t.Fatal(err)
		}
		producers = append(producers, &producer{c: c, name: "prod-" + v, vchannel: v,
			acks: map[sl.IdemKey]sl.Ack{}, tried: map[sl.IdemKey]bool{}})
	}
	drop, err := c.reg.Create(ctx, c.wal, "v-drop", "")
	if err != nil {
		t.Fatal(err)
	}
	pctx, stopProducers := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	for _, p := range producers {
		pwg.Add(1)
		go func() { defer pwg.Done(); p.run(pctx) }()
	}
	time.Sleep(phase)

	// Freeze node-a.
	a := c.node("node-a")
	var moved []string
	for p, h := range c.holders() {
		if h == "node-a" {
			moved = append(moved, p)
		}
	}
	slices.Sort(moved)
	a.freeze.freeze()
	frozenAt := time.Now()
	failover := c.waitFor("node-a's pchannels held elsewhere", 60*time.Second, func() (bool, string) {
		h := c.holders()
		for _, p := range pchannels {
			if h[p] == "" || h[p] == "node-a" {
				return false, fmt.Sprint(h)
			}
		}
		return true, ""
	})
	t.Logf("node-a frozen: %v moved to live nodes, writers open, %v after the freeze (lease TTL %v + margin %v = %v; balancer round %v, node poll %v)",
		moved, failover.Round(time.Millisecond), tm.ttl, tm.margin, tm.ttl+tm.margin, tm.check, tm.poll)

	for _, p := range moved {
		// The lease lapses at its deadline + margin (= expires) and may be
		// taken after expires + margin.
		dl, acq, to := c.grants.handover(p, "node-a")
		t.Logf("  %s: node-a's lease takeable at +%v, acquired by %s at +%v",
			p, dl.Add(2*tm.margin).Sub(frozenAt).Round(time.Millisecond), to, acq.Sub(frozenAt).Round(time.Millisecond))
	}

	// Drop a vchannel while its pchannel may have moved.
	dropped, err := c.reg.Drop(ctx, c.wal, "v-drop")
	if err != nil || dropped.Dropped == nil || !dropped.Position.Done || dropped.State != coordinator.VChannelDropped {
		t.Fatalf("drop: %+v, %v", dropped, err)
	}
	if _, err := c.reg.AdvancePosition(ctx, "v-drop", coordinator.Position{ID: sl.MessageID{Offset: 1 << 30}}); err == nil {
		t.Fatal("a position update after the drop was accepted")
	}

	// A new node joins and gets a fair share.
	c.startNode("node-d")
	join := c.waitFor("fair share with node-d", 60*time.Second, fair("node-b", "node-c", "node-d"))
	t.Logf("node-d joined: 2 pchannels each on node-b, node-c, node-d after %v", join.Round(time.Millisecond))

	time.Sleep(phase / 2)
	stopProducers()
	pwg.Wait()

	// node-a thaws: its queued PUTs and renewals go out late and are
	// fenced; it sees its pchannels moved and lets go of its writers.
	a.freeze.thaw()
	c.waitFor("node-a lets go of its stale writers", 60*time.Second, func() (bool, string) {
		for _, p := range moved {
			w := a.holder.writer(p)
			if w == nil || w.Err() != nil {
				continue
			}
			if l, err := c.leases.Describe(ctx, p); err != nil || l.Term != w.Term() {
				return false, fmt.Sprintf("%s: node-a still runs term %d", p, w.Term())
			}
		}
		return true, ""
	})
	c.stop()

	terms, takeovers, overlapped := c.grants.checkExclusive(t)
	acked, delivered := c.checkDelivery(t, producers)
	if acked == 0 {
		t.Fatal("no append was acked")
	}
	var retries int
	for _, p := range producers {
		retries += p.retries
	}
	// The drop message is in the WAL where the record says.
	var found bool
	for _, d := range scan(t, c.base, c.layout, drop.PChannel, []sl.MessageType{sl.TypeDropVChannel}) {
		if d.VChannel == "v-drop" {
			if found || d.ID != dropped.Dropped.ID {
				t.Errorf("drop message at %v, record says %v (twice: %t)", d.ID, dropped.Dropped.ID, found)
			}
			found = true
		}
	}
	if !found {
		t.Error("no drop message in the WAL")
	}
	bal := c.bals[0].b
	sessions, err := bal.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if !s.Stopped {
			t.Errorf("session %s not stopped after a graceful shutdown", s.Node)
		}
	}
	if takeovers == 0 {
		t.Error("node-d's share came with no forced takeover: balancing moves do not take the lease over")
	}
	t.Logf("%d appends acked, %d messages delivered, each acked one exactly once; %d append retries; %d lease terms, %d taken over by balancing moves (%d of them while the old term was live), no other overlap; balancer stats %+v",
		acked, delivered, retries, terms, takeovers, overlapped, bal.Stats())
	timings := "test"
	if *clusterDefaults {
		timings = "default"
	}
	t.Logf("idle, %v window, %s timings: %s", idle.window, timings, idle)
}

// idleRates are the requests of one idle node runtime, its writers, and one
// balancer over a window with no change.
type idleRates struct {
	window                 time.Duration
	node, writers, balance map[objstore.Op]int64
	disturbed              bool
}

func (r idleRates) perSec(m map[objstore.Op]int64) float64 {
	return float64(totalOps(m)) / r.window.Seconds()
}

func (r idleRates) String() string {
	return fmt.Sprintf("node runtime %.1f req/s %s; its writers (2 pchannels) %.1f req/s %s; one balancer %.1f req/s %s",
		r.perSec(r.node), fmtOps(r.node), r.perSec(r.writers), fmtOps(r.writers), r.perSec(r.balance), fmtOps(r.balance))
}

// measureIdle counts the requests of node-a, its writers and the first
// balancer over window while nothing changes, and checks the node runtime
// costs one LIST per poll and one conditional PUT per heartbeat, with no
// GET.
func measureIdle(t *testing.T, c *cluster, window time.Duration) idleRates {
	t.Helper()
	ctx := context.Background()
	a, bal := c.node("node-a"), c.bals[0]
	// Let every node and balancer see the last changes first.
	time.Sleep(3 * max(c.tm.poll, c.tm.check))
	before, err := bal.b.Assignments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n0, w0, b0, s0 := opCounts(a.count), opCounts(a.wcount), opCounts(bal.count), a.node.Stats()
	start := time.Now()
	time.Sleep(window)
	n1, w1, b1, s1 := opCounts(a.count), opCounts(a.wcount), opCounts(bal.count), a.node.Stats()
	r := idleRates{window: time.Since(start), node: diffOps(n1, n0), writers: diffOps(w1, w0), balance: diffOps(b1, b0)}
	after, err := bal.b.Assignments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.disturbed = len(before) != len(after) || s1.Holds != s0.Holds || s1.Releases != s0.Releases
	for i := range before {
		if !r.disturbed && before[i].Version != after[i].Version {
			r.disturbed = true
		}
	}
	if r.disturbed {
		t.Logf("idle window disturbed by a reassignment (a loaded machine); rates not checked")
		return r
	}
	polls, beats := int64(r.window/c.tm.poll)+2, int64(r.window/c.tm.heartbeat)+2
	if r.node[objstore.OpGet] != 0 || r.node[objstore.OpList] > polls || r.node[objstore.OpPutIfMatch] > beats ||
		totalOps(r.node) != r.node[objstore.OpList]+r.node[objstore.OpPutIfMatch] {
		t.Errorf("idle node runtime made %s in %v; want only LISTs (≤ %d) and conditional PUTs (≤ %d)", fmtOps(r.node), r.window, polls, beats)
	}
	if r.balance[objstore.OpPutIfMatch]+r.balance[objstore.OpPutIfAbsent] != 0 {
		t.Errorf("idle balancer wrote: %s", fmtOps(r.balance))
	}
	return r
}
