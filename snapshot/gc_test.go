package snapshot_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/objstoretest"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// clockAt is a GC clock that reads later than the wall clock by skip.
func clockAt(skip time.Duration) func() time.Time {
	return func() time.Time { return time.Now().Add(skip) }
}

func newGC(t testing.TB, store objstore.Store, mod func(*snapshot.GCConfig)) *snapshot.GC {
	t.Helper()
	cfg := snapshot.GCConfig{Layout: testLayout, Logger: quietLog}
	if mod != nil {
		mod(&cfg)
	}
	g, err := snapshot.NewGC(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func walOffsets(t testing.TB, store objstore.Store, pch string) map[uint64]bool {
	t.Helper()
	out := make(map[uint64]bool)
	for _, k := range listKeys(t, store, testLayout.WALPrefix(pch)) {
		if off, ok := testLayout.ParseWALOffset(pch, k); ok {
			out[off] = true
		}
	}
	return out
}

// TestGCFrozenWriter: a writer freezes with PUTs on their way, stays frozen
// past its lease and (by GC's clock) past min_age, while a new writer fences
// it, appends, and flush and GC truncate the WAL. Thawed, the zombie's late
// PUTs all meet objects GC kept (the fence window), so none is acknowledged
// and none is delivered.
func TestGCFrozenWriter(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		const pch = "zombie"
		fz := &objstoretest.Process{Store: store}
		ttl := 600 * time.Millisecond
		l1, err := coordinator.NewLeases(fz, testLayout, coordinator.LeaseConfig{TTL: ttl, Margin: ttl / 4}, coordinator.WithRequestTimeout(ttl/8))
		if err != nil {
			t.Fatal(err)
		}
		w1, err := sl.OpenWriter(ctx, sl.WriterConfig{PChannel: pch, Layout: testLayout, Holder: "w1", Logger: quietLog,
			PutTimeout: ttl / 8, GetTimeout: ttl / 8, RenewInterval: ttl / 6, TimeTickInterval: -1}, fz, l1)
		if err != nil {
			t.Fatal(err)
		}
		acks := appendN(t, w1, "w1", 0, 20, "va", "vb")
		flusher := newFlusher(t, store, pch, nil)
		if _, err := flusher.FlushNow(ctx); err != nil {
			t.Fatal(err)
		}
		a := w1.Stats().Frontier // W1's ack frontier: where the next term fences

		// Freeze W1 with appends in flight: their PUTs block in the store.
		fz.Freeze()
		type late struct {
			acks []sl.Ack
			err  error
		}
		lates := make(chan late, 5)
		for i := 0; i < 5; i++ {
			go func() {
				ack, err := w1.Append(ctx, sl.Message{Type: sl.TypeData, VChannel: "va", Payload: fmt.Appendf(nil, "late/%d", i)})
				lates <- late{ack, err}
			}()
		}
		testkit.Eventually(t, 5*time.Second, "a PUT of the frozen writer blocks in the store", func() bool { return fz.BlockedWrites() > 0 })
		if w1.Stats().PutAttempts <= 20 {
			t.Fatalf("no PUT of the frozen writer is on its way (%d attempts)", w1.Stats().PutAttempts)
		}

		// W2 takes over once W1's lease expired, fences at a, appends.
		var w2 *sl.Writer
		testkit.EventuallyNil(t, 10*ttl, "a second writer opens once W1's lease expired", func() error {
			w2, err = sl.OpenWriter(ctx, sl.WriterConfig{PChannel: pch, Layout: testLayout, Holder: "w2", Logger: quietLog,
				PutTimeout: time.Second, GetTimeout: time.Second, RenewInterval: ttl / 6, TimeTickInterval: -1}, store, newLeases(t, store, ttl))
			if err != nil && !errors.Is(err, coordinator.ErrLeaseHeld) {
				t.Fatalf("second writer: %v", err)
			}
			return err
		})
		if fence := w2.Stats().FenceOffset; fence != a {
			t.Fatalf("second writer fenced at %d, want W1's frontier %d", fence, a)
		}
		acks = append(acks, appendN(t, w2, "w2", 0, 20, "va", "vb", "vc")...)
		if err := w2.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := flusher.FlushNow(ctx); err != nil {
			t.Fatal(err)
		}
		cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
		if err != nil {
			t.Fatal(err)
		}

		// GC, two hours later by its clock: past min_age for everything.
		res, err := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(2 * time.Hour) }).CollectWAL(ctx, pch)
		if err != nil {
			t.Fatal(err)
		}
		left := walOffsets(t, store, pch)
		for off := uint64(0); off < cp.C; off++ {
			protected := off < 8 || off >= a && off < a+8
			if left[off] != protected {
				t.Errorf("slot %d below the checkpoint %d: kept=%v, want kept=%v (fence windows at 0 and %d)", off, cp.C, left[off], protected, a)
			}
		}
		if res.Point != cp.C || res.Kept != 16 || res.Deleted != int(cp.C)-16 {
			t.Errorf("gc %+v: want point %d, 16 kept, %d deleted", res, cp.C, cp.C-16)
		}

		// Thaw: W1's late PUTs meet W2's window; none may be acknowledged.
		fz.Thaw(0)
		for i := 0; i < 5; i++ {
			select {
			case l := <-lates:
				if l.err == nil {
					t.Errorf("a late append of the zombie was acknowledged: %+v", l.acks)
				} else {
					t.Logf("late append: %v", l.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("late appends of the thawed writer never returned")
			}
		}
		_ = w1.Close(ctx)
		for off := a; off < a+8; off++ {
			obj, err := store.Get(ctx, testLayout.WAL(pch, off))
			if err != nil {
				t.Fatalf("fence window slot %d: %v", off, err)
			}
			if b, err := sl.DecodeBatch(obj.Body); err != nil || b.Term != w2.Term() || b.Kind == sl.KindData {
				t.Errorf("fence window slot %d now holds %v term %d (%v), want W2's fence or filler", off, b.Kind, b.Term, err)
			}
		}
		got := scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil)
		for _, d := range got {
			if strings.HasPrefix(string(d.Payload), "late/") {
				t.Errorf("the zombie's late append %q was delivered at %v", d.Payload, d.ID)
			}
		}
		checkNoGapNoDup(t, got, acks)
		if len(got) != 40 {
			t.Errorf("%d messages delivered, want the 40 acked", len(got))
		}
	})
}

// TestGCRetainersAndAge: the truncation point is the lowest of the
// checkpoint and every retainer; nothing younger than min_age goes.
func TestGCRetainersAndAge(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	const pch = "retain"
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	appendN(t, w, "p", 0, 30, "va")
	if _, err := newFlusher(t, store, pch, nil).FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	young, err := newGC(t, store, nil).CollectWAL(ctx, pch)
	if err != nil || young.Deleted != 0 || young.Young != 38 {
		t.Fatalf("gc with the real clock: %+v, %v; want all 38 slots young", young, err)
	}
	hold := snapshot.RetainFunc(func(_ context.Context, p string) (uint64, bool, error) { return 20, p == pch, nil })
	res, err := newGC(t, store, func(c *snapshot.GCConfig) {
		c.Now, c.Retainers = clockAt(2*time.Hour), []snapshot.Retainer{hold}
	}).CollectWAL(ctx, pch)
	if err != nil || res.Point != 20 || res.Deleted != 12 {
		t.Fatalf("gc with a retainer at 20: %+v, %v; want slots 8..19 deleted", res, err)
	}
	left := walOffsets(t, store, pch)
	for off := uint64(0); off < 38; off++ {
		if want := off < 8 || off >= 20; left[off] != want {
			t.Errorf("slot %d kept=%v, want %v", off, left[off], want)
		}
	}
	// Catch-up below the checkpoint reads segments, not the emptied slots.
	if got := scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil); len(got) != 30 {
		t.Errorf("read %d messages after GC, want 30", len(got))
	}
}

// TestGCOrphans: files of a flush that lost (or died before) its CAS are
// deleted once older than OrphanAge; files a manifest names never are.
func TestGCOrphans(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		const pch = "orphans"
		w := openWriter(t, store, pch, nil)
		defer w.Close(ctx)
		appendN(t, w, "p", 0, 20, "va", "vb")
		if _, err := newFlusher(t, dyingStore{store}, pch, nil).FlushNow(ctx); !errors.Is(err, errDied) {
			t.Fatalf("dying flush: %v", err)
		}
		orphans := listKeys(t, store, snapshot.SegmentsPrefix(testLayout))
		if _, err := newFlusher(t, store, pch, nil).FlushNow(ctx); err != nil {
			t.Fatal(err)
		}
		all := listKeys(t, store, snapshot.SegmentsPrefix(testLayout))
		if len(orphans) != 2 || len(all) != 4 {
			t.Fatalf("%d orphans of %d files, want 2 of 4", len(orphans), len(all))
		}
		res, err := newGC(t, store, nil).CollectOrphans(ctx)
		// The dying flush also left its dedup state object; the checkpoint
		// names the other flush's.
		if err != nil || res.Deleted != 0 || res.Young != 3 || res.DedupYoung != 1 || res.Referenced != 3 {
			t.Fatalf("orphan gc now: %+v, %v; want 2 young orphan files and a young dedup state object kept", res, err)
		}
		g := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(2 * time.Hour) })
		if err := g.Collect(ctx); err != nil {
			t.Fatal(err)
		}
		left := listKeys(t, store, snapshot.SegmentsPrefix(testLayout))
		if len(left) != 2 {
			t.Fatalf("files left %v, want the 2 the manifest names", left)
		}
		for _, k := range left {
			for _, o := range orphans {
				if k == o {
					t.Errorf("orphan %s survived", k)
				}
			}
		}
		if got := scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil); len(got) != 20 {
			t.Errorf("read %d messages after GC, want 20", len(got))
		}
	})
}

// TestGCShrinksGarbage: a zombie's batch that landed inside a newer term's
// fence window stays occupied but becomes a tombstone; it is never
// delivered either way.
func TestGCShrinksGarbage(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	const pch = "garbage"
	w1 := openWriter(t, store, pch, nil)
	appendN(t, w1, "p", 0, 5, "va")
	a, term1 := w1.Stats().Frontier, w1.Term()
	if err := w1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// A late PUT of term 1 that overtook its predecessor: slot a+1 is
	// taken while a is still empty.
	zombie := sl.Batch{Kind: sl.KindData, Term: term1, Offset: a + 1, Messages: []sl.Message{{Type: sl.TypeData, VChannel: "va", TimeTick: 1 << 40, Payload: []byte("zombie")}}}
	body, err := zombie.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutIfAbsent(ctx, testLayout.WAL(pch, a+1), body, nil); err != nil {
		t.Fatal(err)
	}
	w2 := openWriter(t, store, pch, nil)
	appendN(t, w2, "p", 5, 5, "va")
	if err := w2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := newFlusher(t, store, pch, nil).FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := newGC(t, store, func(c *snapshot.GCConfig) { c.Now, c.ShrinkGarbage = clockAt(2*time.Hour), true }).CollectWAL(ctx, pch)
	if err != nil || res.Tombstone != 1 {
		t.Fatalf("gc: %+v, %v; want one tombstone", res, err)
	}
	obj, err := store.Get(ctx, testLayout.WAL(pch, a+1))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := sl.DecodeBatch(obj.Body); err != nil || b.Kind != sl.KindTombstone {
		t.Fatalf("garbage slot holds %v (%v), want a tombstone", b.Kind, err)
	}
	got := scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil)
	for _, d := range got {
		if string(d.Payload) == "zombie" {
			t.Errorf("garbage delivered at %v", d.ID)
		}
	}
	if len(got) != 10 {
		t.Errorf("%d delivered, want 10", len(got))
	}
}
