package coordinator

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// tickingClock advances by step at every reading, like a clock read across
// slow store requests.
type tickingClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *tickingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *tickingClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// TestBalancerDecidesAtOneReading: a lease the balancer knows to be live is
// not read again, so the round must decide at the clock reading it checked
// that with; a later reading could call the lease expired unread, and move
// a pchannel whose holder is renewing happily.
func TestBalancerDecidesAtOneReading(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	clk := &tickingClock{t: t0, step: time.Millisecond}
	leases := newTestLeases(t, store, clk.Now)
	mustAcquire(t, leases, "p0", "n1", "nonce-1")
	rec := records{store: store, timeout: time.Second, now: clk.Now}
	if _, _, err := updateRecord(ctx, rec, sessionCodec(testLayout), "n1", func(cur *Session, _ time.Time) (Session, error) {
		return decideRegister(cur, "n1", "http://n1", "i1", t0.Add(time.Hour)), nil // alive throughout
	}); err != nil {
		t.Fatal(err)
	}
	setAssignment(t, store, Assignment{PChannel: "p0", State: PChannelAssigned, Node: "n1"})
	b, err := NewBalancer(Config{Layout: testLayout, PChannels: []string{"p0"}, Now: clk.Now, Logger: quietLog}, store, leases)
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := b.Check(ctx); err != nil || len(changed) != 0 {
		t.Fatalf("first round: %+v, %v", changed, err)
	}
	// The known lease lapses (expires + margin) just after the round's
	// first reading; the round reads the clock several times more.
	l := mustDescribe(t, leases, "p0")
	clk.set(l.Expires.Add(DefaultLeaseMargin - time.Millisecond))
	if changed, err := b.Check(ctx); err != nil || len(changed) != 0 {
		t.Fatalf("second round moved a pchannel whose lease it judged live: %+v, %v", changed, err)
	}
	// Once it has lapsed by the round's reading, the lease is read again:
	// still not renewed, so the pchannel is reassigned (to n1 again, the
	// only live node).
	clk.set(l.Expires.Add(DefaultLeaseMargin + time.Millisecond))
	changed, err := b.Check(ctx)
	if err != nil || len(changed) != 1 || changed[0].State != PChannelAssigning || changed[0].Node != "n1" {
		t.Fatalf("third round: %+v, %v", changed, err)
	}
	if st := b.Stats(); st.LeaseReads != 2 {
		t.Fatalf("lease reads %d, want 2 (first round, and after the known lease lapsed)", st.LeaseReads)
	}
}

// TestReadAPIsRetryTransientFailures: Assignments, Sessions and the
// registry's List answer through a store whose every other LIST and GET
// fails; only a store that stays down makes them fail. (A single slow LIST
// on a loaded machine once failed a cluster test's Assignments call.)
func TestReadAPIsRetryTransientFailures(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	leases := newTestLeases(t, mem, time.Now)
	cfg := Config{Layout: testLayout, PChannels: []string{"p0", "p1"}, Logger: quietLog}
	b, err := NewBalancer(cfg, mem, leases)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Check(ctx); err != nil {
		t.Fatal(err)
	}
	flaky := objstore.NewFault(mem, objstore.FaultConfig{Seed: 7,
		ErrorRates: map[objstore.Op]float64{objstore.OpList: 0.5, objstore.OpGet: 0.5}})
	fb, err := NewBalancer(cfg, flaky, leases)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		as, err := fb.Assignments(ctx)
		if err != nil || len(as) != 2 {
			t.Fatalf("call %d: Assignments = %d records, %v", i, len(as), err)
		}
		if _, err := fb.Sessions(ctx); err != nil {
			t.Fatalf("call %d: Sessions: %v", i, err)
		}
	}
	if st := flaky.Stats(); st.Injected[objstore.OpList] == 0 {
		t.Fatalf("no fault injected: %+v", st)
	}
	down := objstore.NewFault(mem, objstore.FaultConfig{ErrorRates: map[objstore.Op]float64{objstore.OpList: 1}})
	db, err := NewBalancer(cfg, down, leases)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Assignments(ctx); !errors.Is(err, objstore.ErrTransient) {
		t.Fatalf("Assignments on a store that stays down: %v, want ErrTransient", err)
	}
}
