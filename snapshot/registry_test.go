package snapshot_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// writerWAL is the coordinator's ControlWAL over one writer.
type writerWAL struct{ w *sl.Writer }

func (c writerWAL) AppendControl(ctx context.Context, _ string, msgs ...sl.Message) ([]sl.Ack, error) {
	return c.w.AppendControl(ctx, msgs...)
}

// TestSnapshotsWithRegistry: the real vchannel registry pins snapshot
// vchannels (PROTOCOL.md "Snapshots" rule 1): a dropped vchannel cannot be
// snapshotted, a pinned one is not reclaimed, and once unpinned GC
// reclaims its segments while the other vchannels keep theirs.
func TestSnapshotsWithRegistry(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		leases := newLeases(t, store, 2*time.Second)
		reg, err := coordinator.NewRegistry(coordinator.Config{Layout: testLayout, PChannels: []string{"p1"}, Logger: quietLog}, store, leases)
		if err != nil {
			t.Fatal(err)
		}
		w := openWriter(t, store, "p1", nil)
		defer w.Close(ctx)
		wal := writerWAL{w}
		for _, v := range []string{"va", "vb"} {
			if _, err := reg.Create(ctx, wal, v, "p1"); err != nil {
				t.Fatal(err)
			}
		}
		appendN(t, w, "p", 0, 20, "va", "vb")
		snaps := newSnapshots(t, store, reg)
		if _, err := snaps.Create(ctx, "keep-va", []string{"va"}); err != nil {
			t.Fatal(err)
		}
		if v, err := reg.Describe(ctx, "va"); err != nil || len(v.Pins) != 1 || v.Pins[0] != "keep-va" {
			t.Fatalf("va after the snapshot: %+v, %v; want pinned by keep-va", v, err)
		}
		if _, err := reg.Drop(ctx, wal, "va"); err != nil {
			t.Fatal(err)
		}
		if _, err := snaps.Create(ctx, "late", []string{"va", "vb"}); !errors.Is(err, coordinator.ErrVChannelDropped) {
			t.Errorf("snapshot of a dropped vchannel: %v, want ErrVChannelDropped", err)
		}
		if v, _ := reg.Describe(ctx, "vb"); len(v.Pins) != 0 {
			t.Errorf("vb pinned by %v after the failed snapshot rolled back", v.Pins)
		}
		gc := newGC(t, store, func(c *snapshot.GCConfig) { c.Reclaimer, c.Now = reg, clockAt(2*time.Hour) })
		if err := gc.Collect(ctx); err != nil {
			t.Fatal(err)
		}
		vaFiles := func() int {
			n := 0
			for _, k := range listKeys(t, store, snapshot.SegmentsPrefix(testLayout)) {
				if strings.Contains(k, "/segments/va/") {
					n++
				}
			}
			return n
		}
		if vaFiles() == 0 {
			t.Fatal("GC deleted the segments of va while a snapshot pins it")
		}
		if err := snaps.Drop(ctx, "keep-va"); err != nil {
			t.Fatal(err)
		}
		if _, err := newFlusher(t, store, "p1", nil).FlushNow(ctx); err != nil { // the drop message too
			t.Fatal(err)
		}
		if err := gc.Collect(ctx); err != nil {
			t.Fatal(err)
		}
		if n := vaFiles(); n != 0 {
			t.Errorf("%d segment files of the reclaimed va left", n)
		}
		if v, err := reg.Describe(ctx, "va"); err != nil || v.State != coordinator.VChannelReclaiming {
			t.Errorf("va: %+v, %v; want reclaiming", v, err)
		}
		got := scanAll(t, store, "p1", sl.Earliest(), snapshot.NewSegmentReader(store, 0), func(c *sl.ScannerConfig) { c.VChannels = []string{"vb"} })
		if len(got) != 10 {
			t.Errorf("vb reads %d messages after va was reclaimed, want 10", len(got))
		}
	})
}
