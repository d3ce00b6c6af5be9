package snapshot_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// TestGCOrphanDedupState: the dedup state object of a flush that died
// before its checkpoint CAS is an orphan: GC keeps it while it is younger
// than OrphanAge (its flush could still commit, within CommitWithin),
// deletes it once older, and never deletes the object the checkpoint
// names, which a takeover then recovers the idempotency window from.
func TestGCOrphanDedupState(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		const pch = "dedup-orphans"
		w := openWriter(t, store, pch, nil)
		acks := appendN(t, w, "p", 0, 20, "va")
		if _, err := newFlusher(t, dyingStore{store}, pch, nil).FlushNow(ctx); !errors.Is(err, errDied) {
			t.Fatalf("dying flush: %v", err)
		}
		orphans := listKeys(t, store, testLayout.DedupStatePrefix(pch))
		if len(orphans) != 1 {
			t.Fatalf("dedup state objects after the dying flush: %v, want its one", orphans)
		}
		if _, err := newFlusher(t, store, pch, nil).FlushNow(ctx); err != nil {
			t.Fatal(err)
		}
		cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
		if err != nil || cp.DedupState == "" || cp.DedupState == orphans[0] {
			t.Fatalf("checkpoint names dedup state %q (%v); want a new one beside the orphan %s", cp.DedupState, err, orphans[0])
		}

		res, err := newGC(t, store, nil).CollectOrphans(ctx)
		if err != nil || res.DedupDeleted != 0 || res.DedupYoung != 1 {
			t.Fatalf("orphan gc now: %+v, %v; want the young orphan kept", res, err)
		}
		if got := listKeys(t, store, testLayout.DedupStatePrefix(pch)); len(got) != 2 {
			t.Fatalf("dedup state objects after a GC at once: %v, want both", got)
		}
		if err := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(2 * time.Hour) }).Collect(ctx); err != nil {
			t.Fatal(err)
		}
		if got := listKeys(t, store, testLayout.DedupStatePrefix(pch)); len(got) != 1 || got[0] != cp.DedupState {
			t.Fatalf("dedup state objects after a GC two hours on: %v, want only the named %s", got, cp.DedupState)
		}

		// A takeover recovers the window from the named object: a retry
		// of a flushed key is a duplicate at its first copy's ID.
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		w2 := openWriter(t, store, pch, nil)
		defer w2.Close(ctx)
		got := appendN(t, w2, "p", 0, 1, "va")
		if !got[0].Duplicate || got[0].ID != acks[0].ID {
			t.Fatalf("retry after GC and takeover: %+v, want a duplicate of %v", got[0], acks[0].ID)
		}
	})
}
