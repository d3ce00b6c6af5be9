package snapshot_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// Dropped and MarkReclaiming make fakeRegistry a snapshot.Reclaimer.
func (r *fakeRegistry) Dropped(_ context.Context, p string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for v := range r.dropped {
		if r.bind[v] == p {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (r *fakeRegistry) MarkReclaiming(_ context.Context, v string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pins[v]) == 0, nil
}

// TestGCReclaimsDroppedVChannels: a dropped vchannel's segments stay while
// a snapshot pins it; once unpinned, GC takes them out of the manifest and
// deletes the files after OrphanAge. Other vchannels are untouched.
func TestGCReclaimsDroppedVChannels(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		reg := newFakeRegistry(map[string]string{"va": "p1", "vb": "p1"})
		w := openWriter(t, store, "p1", nil)
		defer w.Close(ctx)
		appendN(t, w, "p", 0, 20, "va", "vb")
		snaps := newSnapshots(t, store, reg)
		if _, err := snaps.Create(ctx, "keep-va", []string{"va"}); err != nil {
			t.Fatal(err)
		}
		appendN(t, w, "p", 20, 10, "va", "vb")
		if _, err := newFlusher(t, store, "p1", nil).FlushNow(ctx); err != nil {
			t.Fatal(err)
		}
		reg.mu.Lock()
		reg.dropped["va"] = true
		reg.mu.Unlock()
		gc := newGC(t, store, func(c *snapshot.GCConfig) { c.Reclaimer, c.Now = reg, clockAt(2*time.Hour) })

		if n, err := gc.ReclaimDropped(ctx, "p1"); err != nil || n != 0 {
			t.Fatalf("reclaim while a snapshot pins va: %d refs removed, %v; want none", n, err)
		}
		if err := snaps.Drop(ctx, "keep-va"); err != nil {
			t.Fatal(err)
		}
		if err := gc.Collect(ctx); err != nil {
			t.Fatal(err)
		}
		cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, "p1")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range cp.Segments {
			if r.VChannel == "va" {
				t.Errorf("manifest still names %s of the reclaimed va", r.Key)
			}
		}
		if len(cp.Segments) != 2 || cp.C != w.Stats().Frontier {
			t.Errorf("checkpoint c=%d with %d segments: want c unchanged at %d and vb's 2 segments", cp.C, len(cp.Segments), w.Stats().Frontier)
		}
		for _, k := range listKeys(t, store, snapshot.SegmentsPrefix(testLayout)) {
			if strings.Contains(k, "/segments/va/") {
				t.Errorf("file %s of the reclaimed va survived GC", k)
			}
		}
		got := scanAll(t, store, "p1", sl.Earliest(), snapshot.NewSegmentReader(store, 0), func(c *sl.ScannerConfig) { c.VChannels = []string{"vb"} })
		if len(got) != 15 {
			t.Errorf("vb reads %d messages after va was reclaimed, want 15", len(got))
		}
	})
}
