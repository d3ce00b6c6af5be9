package coordinator_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// A cluster runs, in one test process, what a deployment runs in many:
// balancers, node runtimes whose Holder opens real segmentlog writers, and
// producers that find the holder of their vchannel with Registry.Locate and
// append through its writer. Each node reaches the store through its own
// freezable, request-counting wrappers, so a test can freeze a node the
// way the OS stops a process (heartbeats, renewals and PUTs all stop) and
// measure what an idle node costs.

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

var clusterLog = flag.String("cluster.log", "", "write the cluster tests' logs (coordinator and writers, debug level) to this file")

// testLogger returns the logger of the cluster's components.
func testLogger(t *testing.T) *slog.Logger {
	if *clusterLog == "" {
		return quietLog
	}
	f, err := os.OpenFile(*clusterLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type clusterTimings struct {
	ttl, margin                 time.Duration // leases
	renew, put, get             time.Duration // writers (get also bounds each lease request)
	heartbeat, sessionTTL, poll time.Duration // nodes
	check, stuck, request       time.Duration // balancers, registry
	appendTimeout, pace         time.Duration // producers: per append, between appends
}

type cluster struct {
	t       *testing.T
	base    objstore.Store
	tm      clusterTimings
	layout  sl.Layout
	cfg     coordinator.Config
	grants  *grantLog
	leases  *coordinator.Leases // the test's own view, on the base store
	reg     *coordinator.Registry
	wal     *routedWAL
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	nodes   map[string]*testNode
	bals    []*testBalancer
	stopped bool
	log     *slog.Logger
}

type testBalancer struct {
	b     *coordinator.Balancer
	count *objstore.Fault
	done  chan error
}

func newCluster(t *testing.T, base objstore.Store, tm clusterTimings, pchannels []string) *cluster {
	t.Helper()
	c := &cluster{t: t, base: base, tm: tm, layout: sl.Layout{Prefix: "c"}, grants: &grantLog{}, nodes: map[string]*testNode{},
		log: testLogger(t)}
	c.cfg = coordinator.Config{
		Layout: c.layout, PChannels: pchannels,
		HeartbeatInterval: tm.heartbeat, SessionTTL: tm.sessionTTL, PollInterval: tm.poll,
		CheckInterval: tm.check, StuckTimeout: tm.stuck, RequestTimeout: tm.request, Logger: c.log,
	}
	c.leases = c.newLeases(t, base)
	reg, err := coordinator.NewRegistry(c.cfg, base, c.leases)
	if err != nil {
		t.Fatal(err)
	}
	c.reg = reg
	c.wal = &routedWAL{c: c}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	t.Cleanup(c.stop)
	return c
}

func (c *cluster) newLeases(t *testing.T, store objstore.Store) *coordinator.Leases {
	t.Helper()
	l, err := coordinator.NewLeases(store, c.layout, coordinator.LeaseConfig{TTL: c.tm.ttl, Margin: c.tm.margin},
		coordinator.WithRequestTimeout(c.tm.get))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// startBalancer runs one more balancer, with its own request counter.
func (c *cluster) startBalancer() *testBalancer {
	c.t.Helper()
	count := objstore.NewFault(c.base, objstore.FaultConfig{})
	b, err := coordinator.NewBalancer(c.cfg, count, c.newLeases(c.t, count))
	if err != nil {
		c.t.Fatal(err)
	}
	tb := &testBalancer{b: b, count: count, done: make(chan error, 1)}
	go func() { tb.done <- b.Run(c.ctx) }()
	c.mu.Lock()
	c.bals = append(c.bals, tb)
	c.mu.Unlock()
	return tb
}

// testNode is one node process: its runtime, its writers, its stores.
type testNode struct {
	id       string
	freeze   *freezer
	count    *objstore.Fault // the node runtime's requests (session, assignments)
	wcount   *objstore.Fault // its writers' requests (leases, WAL)
	node     *coordinator.Node
	holder   *writerHolder
	cancel   context.CancelFunc
	done     chan error
	finished bool
}

func (c *cluster) startNode(id string) *testNode {
	c.t.Helper()
	fz := &freezer{}
	count := objstore.NewFault(c.base, objstore.FaultConfig{})
	wcount := objstore.NewFault(c.base, objstore.FaultConfig{})
	wstore := &freezeStore{Store: wcount, f: fz}
	h := &writerHolder{id: id, c: c, store: wstore,
		leases: &recordingLeases{inner: c.newLeases(c.t, wstore), holder: id, log: c.grants}, writers: map[string]*sl.Writer{}}
	n, err := coordinator.NewNode(c.cfg, &freezeStore{Store: count, f: fz}, id, "http://"+id+".test", h)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(c.ctx)
	tn := &testNode{id: id, freeze: fz, count: count, wcount: wcount, node: n, holder: h, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	c.mu.Lock()
	c.nodes[id] = tn
	c.mu.Unlock()
	return tn
}

func (c *cluster) node(id string) *testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// stopNode shuts a node down gracefully and waits for its Run.
func (c *cluster) stopNode(tn *testNode) {
	c.t.Helper()
	tn.freeze.thaw()
	tn.cancel()
	if tn.finished {
		return
	}
	select {
	case err := <-tn.done:
		tn.finished = true
		if err != nil {
			c.t.Errorf("node %s: Run: %v", tn.id, err)
		}
	case <-time.After(30 * time.Second):
		c.t.Errorf("node %s did not stop", tn.id)
	}
}

// stop ends everything: nodes (gracefully), then balancers.
func (c *cluster) stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	nodes := slices.Collect(maps.Values(c.nodes))
	bals := c.bals
	c.mu.Unlock()
	for _, tn := range nodes {
		c.stopNode(tn)
	}
	c.cancel()
	for _, b := range bals {
		if err := <-b.done; err != nil {
			c.t.Errorf("balancer Run: %v", err)
		}
	}
}

// waitFor polls cond every 10ms until it holds or timeout passes; it
// returns how long it took.
func (c *cluster) waitFor(what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	c.t.Helper()
	start := time.Now()
	testkit.EventuallyNil(c.t, timeout, what, func() error {
		if ok, state := cond(); !ok {
			return fmt.Errorf("last state:\n%s\n%s", state, c.describe())
		}
		return nil
	})
	return time.Since(start)
}

// holders returns, for every pchannel, the live lease holder whose writer is
// open and running ("" if none), by the test's clock.
func (c *cluster) holders() map[string]string {
	out := map[string]string{}
	ps, err := c.reg.PChannels(c.ctx)
	if err != nil {
		return out
	}
	for _, p := range ps {
		out[p] = ""
		l, err := c.leases.Describe(c.ctx, p)
		if err != nil || l.Released || time.Now().After(l.Expires) {
			continue
		}
		if tn := c.node(l.Holder); tn != nil {
			if w := tn.holder.writer(p); w != nil && w.Term() == l.Term && w.Err() == nil {
				out[p] = l.Holder
			}
		}
	}
	return out
}

// counts returns how many pchannels each node holds according to holders.
func counts(holders map[string]string) map[string]int {
	out := map[string]int{}
	for _, h := range holders {
		out[h]++
	}
	return out
}

func (c *cluster) describe() string {
	var b []byte
	if as, err := c.bals[0].b.Assignments(c.ctx); err == nil {
		for _, a := range as {
			b = fmt.Appendf(b, "  %s %s node=%s from=%s since=%s reason=%q\n", a.PChannel, a.State, a.Node, a.From, a.Since.Format("15:04:05.000"), a.Reason)
		}
	}
	for p, h := range c.holders() {
		b = fmt.Appendf(b, "  holder %s: %q\n", p, h)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, tn := range c.nodes {
		b = fmt.Appendf(b, "  node %s holds %v stats %+v\n", id, tn.node.Held(), tn.node.Stats())
	}
	return string(b)
}

// writerHolder is the Holder of a test node: one segmentlog.Writer per held
// pchannel, opened with the node's ID as the lease holder.
type writerHolder struct {
	id      string
	c       *cluster
	store   objstore.Store
	leases  sl.Leases
	mu      sync.Mutex
	writers map[string]*sl.Writer
}

func (h *writerHolder) writer(p string) *sl.Writer {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.writers[p]
}

func (h *writerHolder) Hold(ctx context.Context, p string) error { return h.hold(ctx, p, false) }

func (h *writerHolder) TakeOver(ctx context.Context, p string) error { return h.hold(ctx, p, true) }

func (h *writerHolder) hold(ctx context.Context, p string, takeover bool) error {
	if w := h.writer(p); w != nil {
		if w.Err() == nil {
			return nil
		}
		h.Release(ctx, p) // stopped (fenced, lease lost): replace it
	}
	tm := h.c.tm
	w, err := sl.OpenWriter(ctx, sl.WriterConfig{
		PChannel: p, Layout: h.c.layout, Holder: h.id, Logger: h.c.log.With("node", h.id),
		PutTimeout: tm.put, GetTimeout: tm.get, RenewInterval: tm.renew, Takeover: takeover,
	}, h.store, h.leases)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.writers[p] = w
	h.mu.Unlock()
	return nil
}

func (h *writerHolder) Release(ctx context.Context, p string) error {
	h.mu.Lock()
	w := h.writers[p]
	delete(h.writers, p)
	h.mu.Unlock()
	if w == nil {
		return nil
	}
	if err := w.Close(ctx); err != nil && !errors.Is(err, sl.ErrFenced) && !errors.Is(err, sl.ErrLeaseExpired) {
		return err
	}
	return nil
}

// routedWAL is the registry's ControlWAL in one process: it sends a control
// message to the writer of the pchannel's current lease holder, retrying
// while the pchannel moves.
type routedWAL struct{ c *cluster }

func (r *routedWAL) AppendControl(ctx context.Context, p string, msgs ...sl.Message) ([]sl.Ack, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var lastErr error
	for ctx.Err() == nil {
		if l, err := r.c.leases.Describe(ctx, p); err == nil {
			if tn := r.c.node(l.Holder); tn != nil {
				if w := tn.holder.writer(p); w != nil {
					actx, acancel := context.WithTimeout(ctx, r.c.tm.appendTimeout)
					acks, err := w.AppendControl(actx, msgs...)
					acancel()
					if err == nil {
						return acks, nil
					}
					lastErr = err
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("append control to %s: %w (last: %v)", p, ctx.Err(), lastErr)
}

// producer appends numbered messages with idempotency keys to one
// vchannel, through whichever node Locate names, retrying each key until it
// is acked (an unknown outcome is retried with the same key on the next
// writer, where the dedup window finds it if it landed).
type producer struct {
	c        *cluster
	name     string
	vchannel string
	mu       sync.Mutex
	acks     map[sl.IdemKey]sl.Ack
	tried    map[sl.IdemKey]bool
	retries  int
}

func (p *producer) run(ctx context.Context) {
	var loc *coordinator.Location
	seq := uint64(0)
	for ctx.Err() == nil {
		seq++
		key := sl.IdemKey{Producer: p.name, Epoch: 1, Seq: seq}
		for ctx.Err() == nil {
			if loc == nil {
				l, err := p.c.reg.Locate(ctx, p.vchannel)
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				loc = &l
			}
			tn := p.c.node(loc.Node)
			var w *sl.Writer
			if tn != nil {
				w = tn.holder.writer(loc.PChannel)
			}
			if w == nil {
				loc = nil
				time.Sleep(20 * time.Millisecond)
				continue
			}
			p.mu.Lock()
			p.tried[key] = true
			p.mu.Unlock()
			actx, cancel := context.WithTimeout(ctx, p.c.tm.appendTimeout)
			acks, err := w.Append(actx, sl.Message{Type: sl.TypeData, VChannel: p.vchannel, Key: key,
				Payload: fmt.Appendf(nil, "%s/%d", p.name, seq)})
			cancel()
			if err == nil {
				p.mu.Lock()
				p.acks[key] = acks[0]
				p.mu.Unlock()
				break
			}
			p.mu.Lock()
			p.retries++
			p.mu.Unlock()
			loc = nil
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(p.c.tm.pace)
	}
}
