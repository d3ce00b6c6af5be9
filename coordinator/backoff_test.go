package coordinator

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// leaseHolder acquires the lease on Hold, as a node's writer pool does,
// and can park it: release it while keeping the pchannel.
type parkingHolder struct {
	leases *Leases
	node   string

	mu    sync.Mutex
	terms map[string][2]string // pchannel → term, nonce of the lease it holds
}

func (h *parkingHolder) Hold(ctx context.Context, p string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.terms[p]; ok {
		return nil // held or parked: no request, as system.Pool
	}
	nonce := h.node + "-" + p + "-" + time.Now().String()
	g, err := h.leases.Acquire(ctx, p, h.node, nonce)
	if err != nil {
		return err
	}
	h.terms[p] = [2]string{time.Duration(g.Term).String(), g.Nonce}
	h.park(ctx, p, g.Term, g.Nonce)
	return nil
}

func (h *parkingHolder) park(ctx context.Context, p string, term uint64, nonce string) {
	if err := h.leases.Release(ctx, p, term, nonce, 0, 0); err != nil {
		panic(err)
	}
}

func (h *parkingHolder) Release(_ context.Context, p string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.terms, p)
	return nil
}

// TestIdleCoordinationBacksOff runs a node and a balancer on synctest's
// clock over a store that counts requests: once the pchannel is assigned
// to the node and its lease parked, the balancer runs a round every
// MaxCheckInterval and the node polls every MaxPollInterval; a Kick polls
// at once; a change (the node stops) brings the balancer back to a round
// every CheckInterval.
func TestIdleCoordinationBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var mu sync.Mutex
		lists := map[string]int{}
		store := objstore.Observe(objstore.NewMemory(), func(r objstore.Request) {
			if r.Op == objstore.OpList {
				mu.Lock()
				lists[r.Key]++
				mu.Unlock()
			}
		})
		leases, err := NewLeases(store, testLayout, LeaseConfig{})
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Layout: testLayout, PChannels: []string{"p0"}, Logger: quietLog}
		b, err := NewBalancer(cfg, store, leases)
		if err != nil {
			t.Fatal(err)
		}
		h := &parkingHolder{leases: leases, node: "n1", terms: map[string][2]string{}}
		n, err := NewNode(cfg, store, "n1", "http://n1", h)
		if err != nil {
			t.Fatal(err)
		}
		bctx, stopB := context.WithCancel(ctx)
		nctx, stopN := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { _ = b.Run(bctx) })
		wg.Go(func() { _ = n.Run(nctx) })
		defer func() { stopN(); stopB(); wg.Wait() }()

		// Settled: p0 assigned to n1, whose lease is parked.
		for start := time.Now(); ; time.Sleep(time.Second) {
			as, err := b.Assignments(ctx)
			if err == nil && len(as) == 1 && as[0].State == PChannelAssigned && as[0].Node == "n1" {
				break
			}
			if time.Since(start) > time.Minute {
				t.Fatalf("p0 not assigned to n1 after a minute: %+v, %v", as, err)
			}
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		rounds, polls := b.Stats().Rounds, n.Stats().Polls
		time.Sleep(16 * time.Minute)
		synctest.Wait()
		rounds, polls = b.Stats().Rounds-rounds, n.Stats().Polls-polls
		if rounds != 60 || polls != 60 {
			t.Errorf("16 idle minutes: %d balancer rounds and %d node polls, want 60 of each (one per 16 s)", rounds, polls)
		}
		if as, _ := b.Assignments(ctx); as[0].State != PChannelAssigned || as[0].Node != "n1" {
			t.Errorf("a parked pchannel moved: %+v", as[0])
		}

		polls = n.Stats().Polls
		n.Kick()
		synctest.Wait()
		if got := n.Stats().Polls - polls; got != 1 {
			t.Errorf("a Kick brought %d polls at once, want 1", got)
		}

		// The node stops (its session is marked stopped): within one
		// backed-off pause the balancer sees it, then rounds come every
		// CheckInterval while p0 is in the remaining pool.
		stopN()
		time.Sleep(16 * time.Second)
		synctest.Wait()
		if as, _ := b.Assignments(ctx); as[0].State != PChannelUnassigned {
			t.Fatalf("16 s after its node stopped p0 is %+v, want unassigned", as[0])
		}
		rounds = b.Stats().Rounds
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := b.Stats().Rounds - rounds; got < 9 {
			t.Errorf("10 s with a pchannel unassigned: %d balancer rounds, want one a second", got)
		}
	})
}
