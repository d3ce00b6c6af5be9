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
// vchannels (docs/protocol.md "Snapshots" rule 1): a dropped vchannel cannot be
// snapshotted, a pinned one is not reclaimed, a restore of it after the
// drop and a GC reads every message it had, and once unpinned GC reclaims
// its segments except those the restored vchannel reads, while the other
// vchannels keep theirs.
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
		acked := scanAll(t, store, "p1", sl.Earliest(), nil, nil)
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
		// An unknown vchannel fails the create the same way, and the
		// rolled-back snapshot is released, not stuck deleting.
		if _, err := snaps.Create(ctx, "typo", []string{"vb", "vz"}); !errors.Is(err, coordinator.ErrNoVChannel) {
			t.Errorf("snapshot of an unknown vchannel: %v, want ErrNoVChannel", err)
		}
		if s, err := snaps.Describe(ctx, "typo"); err == nil && s.State != snapshot.Released {
			t.Errorf("snapshot of an unknown vchannel left %s", s.State)
		}
		if v, _ := reg.Describe(ctx, "vb"); len(v.Pins) != 0 {
			t.Errorf("vb pinned by %v after the snapshot of an unknown vchannel rolled back", v.Pins)
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
		// Restore the dropped, collected-around va: the restored vchannel
		// reads exactly what va had, message for message.
		vaBefore := onlyVChannel(acked, "va")
		if _, err := snaps.Restore(ctx, "back", "keep-va", map[string]string{"va": "va-back"}); err != nil {
			t.Fatal(err)
		}
		if err := snaps.Drop(ctx, "keep-va"); err != nil {
			t.Fatal(err)
		}
		if err := gc.Collect(ctx); err != nil {
			t.Fatal(err)
		}
		var restored []sl.Delivery // the data; the segments hold va's create message too
		for _, d := range drain(t)(snaps.OpenRestored(ctx, "back", "va-back", sl.MessageID{})) {
			if d.Type.IsData() {
				restored = append(restored, d)
			}
		}
		if len(restored) != len(vaBefore) {
			t.Fatalf("restored %d messages of va, want %d", len(restored), len(vaBefore))
		}
		for i := range vaBefore {
			if string(restored[i].Payload) != string(vaBefore[i].Payload) || restored[i].TimeTick != vaBefore[i].TimeTick {
				t.Fatalf("restored message %d: %q at %d, want %q at %d", i, restored[i].Payload, restored[i].TimeTick,
					vaBefore[i].Payload, vaBefore[i].TimeTick)
			}
		}
		if _, err := newFlusher(t, store, "p1", nil).FlushNow(ctx); err != nil { // the drop message too
			t.Fatal(err)
		}
		if err := gc.Collect(ctx); err != nil {
			t.Fatal(err)
		}
		// va is reclaimed; only the files its restored copy reads stay
		// (docs/protocol.md "Snapshots" rule 2), and they still read back whole.
		job, err := snaps.RestoreStatus(ctx, "back")
		if err != nil {
			t.Fatal(err)
		}
		if n := vaFiles(); n != len(job.Segments) {
			t.Errorf("%d segment files of the reclaimed va left, want the %d the restored va-back reads", n, len(job.Segments))
		}
		if again := drain(t)(snaps.OpenRestored(ctx, "back", "va-back", sl.MessageID{})); len(again) != len(restored)+1 {
			t.Errorf("va-back reads %d messages after va was reclaimed, want %d", len(again), len(restored)+1)
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

// TestFlushAdvancesPositions: a flusher given the registry records each
// flushed vchannel's position: every message below the new checkpoint is
// in segments, the timetick is the vchannel's last flushed one. A dropped
// vchannel's position stays done.
func TestFlushAdvancesPositions(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		reg, err := coordinator.NewRegistry(coordinator.Config{Layout: testLayout, PChannels: []string{"p1"}, Logger: quietLog},
			store, newLeases(t, store, 2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		w := openWriter(t, store, "p1", nil)
		defer w.Close(ctx)
		wal := writerWAL{w}
		for _, v := range []string{"va", "vb", "vc"} {
			if _, err := reg.Create(ctx, wal, v, "p1"); err != nil {
				t.Fatal(err)
			}
		}
		acks := appendN(t, w, "p", 0, 9, "va", "vb", "vc")
		if _, err := reg.Drop(ctx, wal, "vc"); err != nil {
			t.Fatal(err)
		}
		f := newFlusher(t, store, "p1", func(c *snapshot.FlushConfig) { c.Positions = reg })
		if _, err := f.FlushNow(ctx); err != nil {
			t.Fatal(err)
		}
		cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, "p1")
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range []string{"va", "vb"} {
			rec, err := reg.Describe(ctx, v)
			if err != nil {
				t.Fatal(err)
			}
			last := acks[6+i] // appendN spreads messages round robin: va, vb, vc, va, ...
			if rec.Position.ID != (sl.MessageID{Offset: cp.C}) || rec.Position.TimeTick != last.TimeTick || rec.Position.Done {
				t.Errorf("%s position %+v, want {%d.0, tick %d}", v, rec.Position, cp.C, last.TimeTick)
			}
		}
		if rec, _ := reg.Describe(ctx, "vc"); !rec.Position.Done {
			t.Errorf("dropped vc's position %+v, want done", rec.Position)
		}
	})
}
