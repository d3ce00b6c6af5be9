package segmentlog_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/objstoretest"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// TestTortureScenarios are fault schedules the random torture reaches only
// by chance, each played once, deterministically, and checked against the
// invariant it threatens. Clocks are skewed by ±skew, within the margin, as
// docs/protocol.md ("Parameters") allows: the holder before is ahead, the
// holder after behind, so that a timetick taken from a clock instead of the
// lease's floor shows.
func TestTortureScenarios(t *testing.T) {
	const (
		ttl    = 3 * time.Second
		margin = time.Second
		skew   = 150 * time.Millisecond // below req: the writer derives its request deadlines from its own clock
		req    = 400 * time.Millisecond
	)
	ahead := func() time.Time { return time.Now().Add(skew) }
	behind := func() time.Time { return time.Now().Add(-skew) }
	open := func(t *testing.T, store objstore.Store, holder string, now func() time.Time) *sl.Writer {
		t.Helper()
		leases, err := coordinator.NewLeases(store, testLayout, coordinator.LeaseConfig{TTL: ttl, Margin: margin},
			coordinator.WithClock(now), coordinator.WithRequestTimeout(req))
		if err != nil {
			t.Fatal(err)
		}
		w, err := sl.OpenWriter(context.Background(), sl.WriterConfig{PChannel: "p", Layout: testLayout, Holder: holder, Logger: quietLog,
			PutTimeout: req, GetTimeout: req, RenewInterval: ttl / 5, TimeTickInterval: -1, Now: now}, store, leases)
		if err != nil {
			t.Fatalf("I11: %s cannot open the pchannel: %v", holder, err)
		}
		return w
	}
	appendOne := func(t *testing.T, w *sl.Writer, payload string) sl.Ack {
		t.Helper()
		acks, err := w.Append(context.Background(), dataMsg("v", payload))
		if err != nil {
			t.Fatalf("append %s: %v", payload, err)
		}
		return acks[0]
	}

	// Append 4: Sync reserves a tick without writing it; the release
	// records it, and the next holder starts above it whatever its clock.
	t.Run("tick floor after a release", func(t *testing.T) {
		ctx := context.Background()
		store := objstore.NewMemory()
		a := open(t, store, "a", ahead)
		appendOne(t, a, "a")
		tick, err := a.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Close(ctx); err != nil {
			t.Fatal(err)
		}
		b := open(t, store, "b", behind)
		defer b.Close(ctx)
		if ack := appendOne(t, b, "b"); ack.TimeTick <= tick {
			t.Errorf("I4: Sync returned %d on the holder before; the next holder's append got tick %d", tick, ack.TimeTick)
		}
	})

	// Append 5: a producer that did not hear its ack (the reply was lost on
	// the way back, or the writer died) retries the same key on the next
	// holder; the idempotency window, rebuilt by the replay, answers with
	// the first copy, which stays the only one delivered (I7).
	t.Run("retry after a failover", func(t *testing.T) {
		ctx := context.Background()
		store := objstore.NewMemory()
		key := sl.IdemKey{Producer: "p", Epoch: 1, Seq: 1}
		msg := sl.Message{Type: sl.TypeData, VChannel: "v", Key: key, Payload: []byte("once")}
		a := open(t, store, "a", ahead)
		first, err := a.Append(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Close(ctx); err != nil {
			t.Fatal(err)
		}
		b := open(t, store, "b", behind)
		retry, err := b.Append(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if retry[0].ID != first[0].ID || !retry[0].Duplicate {
			t.Errorf("I7: the retry after the failover was acked at %v (duplicate %t), the first copy at %v", retry[0].ID, retry[0].Duplicate, first[0].ID)
		}
		copies := 0
		for _, d := range scanAll(t, store, testLayout, "p", sl.Earliest(), req) {
			if d.Key == key {
				copies++
			}
		}
		if copies != 1 {
			t.Errorf("I7: key %+v delivered %d times", key, copies)
		}
	})

	// Acquire 2: a zombie thawed after a takeover must not renew the new
	// holder's lease as its own. If it did, it would go on stamping ticks
	// from its own clock: a Sync it answers could promise a tick the new
	// holder's later messages fall below.
	t.Run("zombie renews after a takeover", func(t *testing.T) {
		ctx := context.Background()
		store := objstore.NewMemory()
		pa := &objstoretest.Process{Store: store}
		a := open(t, pa, "a", ahead)
		defer a.Close(ctx)
		appendOne(t, a, "a")
		// Freeze A just after a renew landed, with its renew loop idle: at
		// the thaw its next renew goes out fresh, not as a call that was
		// stuck in the freeze (which would fail on its own deadline).
		leases, err := coordinator.NewLeases(store, testLayout, coordinator.LeaseConfig{TTL: ttl, Margin: margin}, coordinator.WithRequestTimeout(req))
		if err != nil {
			t.Fatal(err)
		}
		l0, err := leases.Describe(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 4*ttl, "A renews its lease", func() bool {
			l, err := leases.Describe(ctx, "p")
			return err == nil && l.Version > l0.Version
		})
		pa.Freeze()
		b := openWhenFree(t, func() (*sl.Writer, error) {
			leases, err := coordinator.NewLeases(store, testLayout, coordinator.LeaseConfig{TTL: ttl, Margin: margin},
				coordinator.WithClock(behind), coordinator.WithRequestTimeout(req))
			if err != nil {
				return nil, err
			}
			return sl.OpenWriter(ctx, sl.WriterConfig{PChannel: "p", Layout: testLayout, Holder: "b", Logger: quietLog,
				PutTimeout: req, GetTimeout: req, RenewInterval: ttl / 5, TimeTickInterval: -1, Now: behind}, store, leases)
		}, 4*ttl)
		defer b.Close(ctx)
		appendOne(t, b, "b1")
		pa.Thaw(time.Second)
		// A's renew goes out at the thaw: it must fail and stop A. Wait
		// for either outcome.
		testkit.Eventually(t, 4*ttl, "the thawed zombie renews or stops", func() bool {
			return a.Err() != nil || a.LeaseDeadline().After(ahead())
		})
		tick, err := a.Sync(ctx)
		if err != nil {
			return // fenced, as it must be
		}
		if ack := appendOne(t, b, "b2"); ack.TimeTick <= tick {
			t.Errorf("I4: the thawed zombie's Sync returned %d; the holder's next append got tick %d", tick, ack.TimeTick)
		}
	})
}

// openWhenFree opens a writer, polling while the lease is held, for at most
// limit.
func openWhenFree(t *testing.T, open func() (*sl.Writer, error), limit time.Duration) *sl.Writer {
	t.Helper()
	var w *sl.Writer
	testkit.EventuallyNil(t, limit, "I11: no writer could take the pchannel", func() (err error) {
		w, err = open()
		return err
	})
	return w
}
