package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	"github.com/cairnlog/cairn/segmentlog"
)

// fakeHolder records Hold and Release calls; Hold fails with a *HeldError
// while refuse[p] > 0.
type fakeHolder struct {
	mu     sync.Mutex
	calls  []string
	refuse map[string]int
	held   map[string]bool
	dead   map[string]bool // the writer stopped by itself
}

func (h *fakeHolder) Hold(_ context.Context, p string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refuse[p] > 0 {
		h.refuse[p]--
		h.calls = append(h.calls, "refused "+p)
		return &HeldError{PChannel: p, Holder: "other", Term: 1, RetryAfter: 30 * time.Millisecond}
	}
	switch {
	case !h.held[p]:
		h.calls = append(h.calls, "hold "+p)
	case h.dead[p]:
		h.calls = append(h.calls, "replace "+p)
		delete(h.dead, p)
	}
	h.held[p] = true
	return nil
}

func (h *fakeHolder) TakeOver(_ context.Context, p string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, "take over "+p)
	delete(h.dead, p)
	h.held[p] = true
	return nil
}

func (h *fakeHolder) Release(_ context.Context, p string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, "release "+p)
	delete(h.held, p)
	return nil
}

func (h *fakeHolder) log() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

var fastNodeCfg = Config{Layout: testLayout, PChannels: []string{"p0", "p1"}, HeartbeatInterval: 20 * time.Millisecond,
	SessionTTL: 100 * time.Millisecond, PollInterval: 10 * time.Millisecond, RequestTimeout: time.Second, Logger: quietLog}

func setAssignment(t *testing.T, store objstore.Store, a Assignment) {
	t.Helper()
	rec := records{store: store, timeout: time.Second, now: time.Now}
	if _, _, err := updateRecord(context.Background(), rec, assignmentCodec(testLayout), a.PChannel, func(cur *Assignment, now time.Time) (Assignment, error) {
		next := a
		next.Since, next.Version = now, 1
		if cur != nil {
			next.Version = cur.Version + 1
		}
		return next, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// runNode runs node n1 over store and h until stop, which fails the test
// if Run returned an error.
func runNode(t *testing.T, store objstore.Store, h Holder) (n *Node, stop func()) {
	t.Helper()
	n, err := NewNode(fastNodeCfg, store, "n1", "http://n1", h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return n, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, what, cond)
}

// TestNodeFollowsAssignments: a node holds what targets it (retrying when
// the lease is still held elsewhere), lets go of what moves away, and on
// shutdown releases everything and stops its session.
func TestNodeFollowsAssignments(t *testing.T) {
	store := objstore.NewMemory()
	h := &fakeHolder{refuse: map[string]int{"p1": 2}, held: map[string]bool{}}
	n, stop := runNode(t, store, h)

	setAssignment(t, store, Assignment{PChannel: "p0", State: PChannelAssigning, Node: "n1"})
	setAssignment(t, store, Assignment{PChannel: "p1", State: PChannelAssigned, Node: "n1"})
	setAssignment(t, store, Assignment{PChannel: "p2", State: PChannelAssigning, Node: "n2"})
	waitUntil(t, "hold p0 and p1", func() bool { return fmt.Sprint(n.Held()) == "[p0 p1]" })
	// Moved away: p0 to another node (unassigning), p1 to the pool.
	setAssignment(t, store, Assignment{PChannel: "p0", State: PChannelUnassigning, From: "n1", Node: "n2"})
	setAssignment(t, store, Assignment{PChannel: "p1", State: PChannelUnassigned})
	waitUntil(t, "release both", func() bool { return len(n.Held()) == 0 })
	setAssignment(t, store, Assignment{PChannel: "p2", State: PChannelAssigning, Node: "n1"})
	waitUntil(t, "hold p2", func() bool { return fmt.Sprint(n.Held()) == "[p2]" })
	stop()
	// Calls of different pchannels may interleave; per pchannel they are
	// in order, and p1's refusals are retried.
	want := map[string]string{
		"p0": "[hold p0 release p0]",
		"p1": "[refused p1 refused p1 hold p1 release p1]",
		"p2": "[hold p2 release p2]",
	}
	perP := map[string][]string{}
	for _, c := range h.log() {
		p := c[len(c)-2:]
		perP[p] = append(perP[p], c)
	}
	for p, w := range want {
		if got := fmt.Sprint(perP[p]); got != w {
			t.Errorf("%s: calls %s, want %s", p, got, w)
		}
	}
	s, err := describeRecord(context.Background(), records{store: store, timeout: time.Second, now: time.Now}, sessionCodec(testLayout), "n1")
	if err != nil || s == nil || !s.Stopped || s.Address != "http://n1" {
		t.Fatalf("session after shutdown: %+v, %v", s, err)
	}
	if st := n.Stats(); st.Heartbeats == 0 || st.Polls == 0 || st.HoldFailures != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestNodeTakesOverOncePerMove: an assignment with TakeOver (a balancing
// move) is taken with Holder.TakeOver once for its version; the polls
// after it check the writer with Hold (the watchdog), which never takes a
// live lease — so a node whose writer the move's new term fenced, polling
// an older view, cannot take the pchannel back. Another move to the node
// (a new version) takes it over again.
func TestNodeTakesOverOncePerMove(t *testing.T) {
	store := objstore.NewMemory()
	h := &fakeHolder{held: map[string]bool{}, dead: map[string]bool{}}
	n, stop := runNode(t, store, h)

	setAssignment(t, store, Assignment{PChannel: "p0", State: PChannelAssigning, Node: "n1", From: "n2", TakeOver: true})
	waitUntil(t, "hold p0", func() bool { return fmt.Sprint(n.Held()) == "[p0]" })
	before := n.Stats().Polls
	waitUntil(t, "three more polls", func() bool { return n.Stats().Polls >= before+3 })
	if got := fmt.Sprint(h.log()); got != "[take over p0]" {
		t.Fatalf("I11: calls %s after three polls of one move; want one take-over (a node that takes a live lease on every poll takes it back from the node a later move chose)", got)
	}
	// The writer stops (fenced by someone's newer term): the watchdog
	// replaces it with Hold, an acquire.
	h.mu.Lock()
	h.dead["p0"] = true
	h.mu.Unlock()
	waitUntil(t, "the watchdog replaces p0's writer", func() bool { return slices.Contains(h.log(), "replace p0") })
	// A second move to n1 (moved away and back, say): a new version.
	setAssignment(t, store, Assignment{PChannel: "p0", State: PChannelAssigning, Node: "n1", From: "n2", TakeOver: true})
	waitUntil(t, "a second take-over", func() bool {
		return strings.Count(strings.Join(h.log(), ","), "take over p0") == 2
	})
	stop()
	if got, want := fmt.Sprint(h.log()), "[take over p0 replace p0 take over p0 release p0]"; got != want {
		t.Fatalf("I11: calls %s, want %s", got, want)
	}
}

// TestNodeSessionTakeover: a second process registering the same node ID
// takes the session; the first stops with ErrSessionLost and lets go of
// what it held.
func TestNodeSessionTakeover(t *testing.T) {
	store := objstore.NewMemory()
	setAssignment(t, store, Assignment{PChannel: "p0", State: PChannelAssigned, Node: "n1"})
	h1 := &fakeHolder{held: map[string]bool{}}
	n1, err := NewNode(fastNodeCfg, store, "n1", "http://first", h1)
	if err != nil {
		t.Fatal(err)
	}
	done1 := make(chan error, 1)
	go func() { done1 <- n1.Run(context.Background()) }()
	waitUntil(t, "first holds p0", func() bool { return len(n1.Held()) == 1 })

	h2 := &fakeHolder{held: map[string]bool{}}
	n2, err := NewNode(fastNodeCfg, store, "n1", "http://second", h2)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- n2.Run(ctx2) }()
	select {
	case err := <-done1:
		if !errors.Is(err, ErrSessionLost) {
			t.Fatalf("first node: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("first node kept running")
	}
	if fmt.Sprint(h1.log()) != "[hold p0 release p0]" {
		t.Fatalf("first node's calls %v", h1.log())
	}
	cancel2()
	if err := <-done2; err != nil {
		t.Fatalf("second node: %v", err)
	}
	s, err := describeRecord(context.Background(), records{store: store, timeout: time.Second, now: time.Now}, sessionCodec(testLayout), "n1")
	if err != nil || s == nil || s.Address != "http://second" || !s.Stopped {
		t.Fatalf("session %+v, %v", s, err)
	}
}

func TestNewNodeValidates(t *testing.T) {
	h := &fakeHolder{}
	if _, err := NewNode(fastNodeCfg, objstore.NewMemory(), "bad/id", "", h); err == nil {
		t.Error("bad node id accepted")
	}
	if _, err := NewNode(fastNodeCfg, nil, "n", "", h); err == nil {
		t.Error("nil store accepted")
	}
	if _, err := NewNode(fastNodeCfg, objstore.NewMemory(), "n", "", nil); err == nil {
		t.Error("nil holder accepted")
	}
	l := newTestLeases(t, objstore.NewMemory(), time.Now)
	if _, err := NewBalancer(Config{Layout: testLayout}, objstore.NewMemory(), nil); err == nil {
		t.Error("balancer without leases accepted")
	}
	if _, err := NewBalancer(Config{Layout: segmentlog.Layout{Prefix: "other"}}, objstore.NewMemory(), l); err == nil {
		t.Error("balancer with another layout than its leases accepted")
	}
	if _, err := NewRegistry(Config{Layout: testLayout, SessionTTL: time.Millisecond}, objstore.NewMemory(), l); err == nil {
		t.Error("registry with an invalid config accepted")
	}
}

// TestNodeWatchdog: a writer that stops by itself (and would keep its lease
// renewed until closed) is replaced at the next poll.
func TestNodeWatchdog(t *testing.T) {
	store := objstore.NewMemory()
	setAssignment(t, store, Assignment{PChannel: "p0", State: PChannelAssigned, Node: "n1"})
	h := &fakeHolder{held: map[string]bool{}, dead: map[string]bool{}}
	n, stop := runNode(t, store, h)
	waitUntil(t, "hold p0", func() bool { return len(n.Held()) == 1 })
	h.mu.Lock()
	h.dead["p0"] = true
	h.mu.Unlock()
	waitUntil(t, "replace p0", func() bool { return slices.Contains(h.log(), "replace p0") })
	stop()
	if got := fmt.Sprint(h.log()); got != "[hold p0 replace p0 release p0]" {
		t.Fatalf("calls %s", got)
	}
	if st := n.Stats(); st.Holds != 1 {
		t.Fatalf("holds %d, want 1 (watchdog holds are not counted)", st.Holds)
	}
}
