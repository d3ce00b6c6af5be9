package coordinator

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// parkingHolder acquires the lease on Hold, as a node's writer pool does;
// park releases it while keeping the pchannel, as the pool does with an
// idle writer. Hold of a held or parked pchannel sends nothing.
type parkingHolder struct {
	leases *Leases
	node   string

	mu     sync.Mutex
	held   map[string][2]any // pchannel → term, nonce
	parked map[string]bool
	seq    int
}

func (h *parkingHolder) Hold(ctx context.Context, p string) error {
	return h.hold(ctx, p, h.leases.Acquire)
}

func (h *parkingHolder) TakeOver(ctx context.Context, p string) error {
	return h.hold(ctx, p, h.leases.Takeover)
}

func (h *parkingHolder) hold(ctx context.Context, p string, acquire func(context.Context, string, string, string) (segmentlog.LeaseGrant, error)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.held[p]; ok || h.parked[p] {
		return nil
	}
	h.seq++
	g, err := acquire(ctx, p, h.node, fmt.Sprintf("%s-%s-%d", h.node, p, h.seq))
	if err != nil {
		return err
	}
	h.held[p] = [2]any{g.Term, g.Nonce}
	return nil
}

// park releases the lease of p, keeping p.
func (h *parkingHolder) park(ctx context.Context, p string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.held[p]
	if !ok {
		return fmt.Errorf("park %s: not held", p)
	}
	delete(h.held, p)
	h.parked[p] = true
	return h.leases.Release(ctx, p, l[0].(uint64), l[1].(string), 0, 0)
}

func (h *parkingHolder) Release(ctx context.Context, p string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.parked, p)
	if l, ok := h.held[p]; ok {
		delete(h.held, p)
		return h.leases.Release(ctx, p, l[0].(uint64), l[1].(string), 0, 0)
	}
	return nil
}

// TestIdleCoordinationBacksOff runs a node and a balancer on synctest's
// clock: once the pchannel is assigned to the node and its lease parked,
// the balancer runs a round every MaxCheckInterval and the node polls
// every MaxPollInterval, and the parked pchannel stays; a Kick polls at
// once; a change (the node stops) brings the balancer back to a round
// every CheckInterval.
func TestIdleCoordinationBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := objstore.NewMemory()
		leases, err := NewLeases(store, testLayout, LeaseConfig{})
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Layout: testLayout, PChannels: []string{"p0"}, Logger: quietLog}
		b, err := NewBalancer(cfg, store, leases)
		if err != nil {
			t.Fatal(err)
		}
		h := &parkingHolder{leases: leases, node: "n1", held: map[string][2]any{}, parked: map[string]bool{}}
		node, err := NewNode(cfg, store, "n1", "http://n1", h)
		if err != nil {
			t.Fatal(err)
		}
		bctx, stopB := context.WithCancel(ctx)
		nctx, stopN := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { _ = b.Run(bctx) })
		wg.Go(func() { _ = node.Run(nctx) })
		defer func() { stopN(); stopB(); wg.Wait() }()

		// A balancer in the same process kicks its node, as `cairn serve`
		// wires them; here the node finds the changes by polling.
		for start := time.Now(); ; time.Sleep(time.Second) {
			as, err := b.Assignments(ctx)
			if err == nil && len(as) == 1 && as[0].State == PChannelAssigned && as[0].Node == "n1" {
				break
			}
			if time.Since(start) > time.Minute {
				t.Fatalf("p0 not assigned to n1 after a minute: %+v, %v", as, err)
			}
		}
		if err := h.park(ctx, "p0"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		rounds, polls := b.Stats().Rounds, node.Stats().Polls
		time.Sleep(16 * time.Minute)
		synctest.Wait()
		rounds, polls = b.Stats().Rounds-rounds, node.Stats().Polls-polls
		if rounds != 60 || polls != 60 {
			t.Errorf("16 idle minutes: %d balancer rounds and %d node polls, want 60 of each (one per 16 s)", rounds, polls)
		}
		if as, _ := b.Assignments(ctx); as[0].State != PChannelAssigned || as[0].Node != "n1" {
			t.Errorf("a parked pchannel moved: %+v", as[0])
		}

		polls = node.Stats().Polls
		node.Kick()
		synctest.Wait()
		if got := node.Stats().Polls - polls; got != 1 {
			t.Errorf("a Kick brought %d polls at once, want 1", got)
		}

		// The assignment goes back to assigning (as after a lapse of the
		// node's session) while the node holds p0 parked: the node lets go
		// and takes the lease again, which confirms the assignment.
		as, _ := b.Assignments(ctx)
		next := as[0]
		next.State = PChannelAssigning
		setAssignment(t, store, next)
		node.Kick()
		synctest.Wait()
		// Within the balancer's backed-off pause (16 s). Looked at every
		// second: this holder never renews, so the lease it takes lapses
		// after its TTL (10 s) and the balancer would then rightly move p0
		// back to assigning.
		var confirmed Assignment
		for range 17 {
			time.Sleep(time.Second)
			synctest.Wait()
			if as, _ := b.Assignments(ctx); as[0].State == PChannelAssigned && as[0].Node == "n1" {
				confirmed = as[0]
				break
			}
		}
		if confirmed.State != PChannelAssigned {
			as, _ := b.Assignments(ctx)
			t.Fatalf("assigning(n1) of a parked pchannel, 17 s on: %+v, want assigned again", as[0])
		}
		if l, err := leases.Describe(ctx, "p0"); err != nil || l.Released || l.Holder != "n1" {
			t.Fatalf("lease of p0: %+v, %v; want taken again by n1", l, err)
		}

		// The node stops (its session is marked stopped): within one
		// backed-off pause the balancer sees it, then rounds come every
		// CheckInterval while p0 is in the remaining pool.
		stopN()
		time.Sleep(17 * time.Second)
		synctest.Wait()
		if as, _ := b.Assignments(ctx); as[0].State != PChannelUnassigned {
			t.Fatalf("17 s after its node stopped p0 is %+v, want unassigned", as[0])
		}
		rounds = b.Stats().Rounds
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := b.Stats().Rounds - rounds; got < 9 {
			t.Errorf("10 s with a pchannel unassigned: %d balancer rounds, want one a second", got)
		}
	})
}
