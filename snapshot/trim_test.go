package snapshot_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// vchannelTrims is GCConfig.Trims over a fixed map.
type vchannelTrims map[string]sl.MessageID

func (m vchannelTrims) VChannelTrims(context.Context, string) (map[string]sl.MessageID, error) {
	return m, nil
}

// TestTrim: a trim point is recorded by CAS on the checkpoint, idempotent
// and monotone; reads from below it fail with the earliest position, reads
// from earliest start at it with no gap above it; GC retires what lies
// wholly below it and deletes it after the grace, except the files a
// snapshot pins; nothing at or above it goes; a vchannel's own trim point
// does the same for its files.
func TestTrim(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		const pch = "tp"
		w := openWriter(t, store, pch, nil)
		defer w.Close(ctx)
		flusher := newFlusher(t, store, pch, nil)
		var acks []sl.Ack
		for round := range 3 {
			acks = append(acks, appendN(t, w, "t", round*10, 10, "va", "vb")...)
			if _, err := flusher.FlushNow(ctx); err != nil {
				t.Fatal(err)
			}
		}
		snaps := newSnapshots(t, store, newFakeRegistry(map[string]string{"va": pch, "vb": pch}))
		if _, err := snaps.Create(ctx, "keep", []string{"va"}); err != nil {
			t.Fatal(err)
		}
		keepVA := drain(t)(snaps.Open(ctx, "keep", "va"))
		acks = append(acks, appendN(t, w, "t", 30, 10, "va", "vb")...) // in the WAL only
		segs := snapshot.NewSegmentReader(store, 0)

		point := acks[15].ID
		cp, err := snapshot.Trim(ctx, store, testLayout, pch, point, time.Now())
		if err != nil || cp.Trim != point {
			t.Fatalf("trim at %v: %+v, %v", point, cp.Trim, err)
		}
		for _, again := range []sl.MessageID{point, acks[2].ID, {}} {
			cp2, err := snapshot.Trim(ctx, store, testLayout, pch, again, time.Now())
			if err != nil || cp2.Trim != point || cp2.Version != cp.Version {
				t.Errorf("trim again at %v: trim %v version %d, %v; want %v at version %d (no write)", again, cp2.Trim, cp2.Version, err, point, cp.Version)
			}
		}

		checkNoGapNoDup(t, scanAll(t, store, pch, sl.Earliest(), segs, nil), acks[15:])
		checkNoGapNoDup(t, scanAll(t, store, pch, sl.AtID(point), segs, nil), acks[15:])
		// Right after the last message below the point: past it.
		checkNoGapNoDup(t, scanAll(t, store, pch, sl.AtID(sl.NextID(acks[14].ID)), segs, nil), acks[15:])
		_, err = sl.NewScanner(ctx, sl.ScannerConfig{PChannel: pch, Layout: testLayout, From: sl.AtID(acks[3].ID), Segments: segs}, store)
		var te *sl.TruncatedError
		if !errors.As(err, &te) || !errors.Is(err, sl.ErrTruncated) || te.Earliest != point {
			t.Fatalf("scan from %v below the trim point: %v; want a TruncatedError naming %v", acks[3].ID, err, point)
		}

		// A flush after the trim carries the point over.
		acks = append(acks, appendN(t, w, "t", 40, 4, "va", "vb")...)
		if _, err := flusher.FlushNow(ctx); err != nil {
			t.Fatal(err)
		}
		if cp, _, _ := sl.ReadCheckpoint(ctx, store, testLayout, pch); cp.Trim != point {
			t.Fatalf("after a flush the trim point is %v, want %v", cp.Trim, point)
		}

		before := segmentKeys(t, store)
		gc := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(2 * time.Hour) })
		n, err := gc.RetireTrimmed(ctx, pch)
		if err != nil || n != 2 {
			t.Fatalf("retire trimmed: %d, %v; want the 2 files of the first round", n, err)
		}
		if err := gc.Collect(ctx); err != nil {
			t.Fatal(err)
		}
		// The retirement grace: collected only once RetiredAt+OrphanAge is past.
		later := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(5 * time.Hour) })
		if err := later.Collect(ctx); err != nil {
			t.Fatal(err)
		}
		after := segmentKeys(t, store)
		cp, _, _ = sl.ReadCheckpoint(ctx, store, testLayout, pch)
		for _, ref := range cp.Segments {
			if !slices.Contains(after, ref.Key) {
				t.Errorf("GC deleted %s, named by the manifest (last offset %d, trim point %v)", ref.Key, ref.LastOffset, point)
			}
		}
		deleted := 0
		for _, k := range before {
			if !slices.Contains(after, k) {
				deleted++
			}
		}
		if deleted != 1 {
			t.Errorf("GC deleted %d segment files, want 1 (vb's first; va's is pinned by a snapshot)", deleted)
		}
		sameDeliveries(t, "snapshot keep after trim and GC", drain(t)(snaps.Open(ctx, "keep", "va")), keepVA)
		checkNoGapNoDup(t, scanAll(t, store, pch, sl.Earliest(), segs, nil), acks[15:])

		// A vchannel's own trim point retires its files only.
		vg := newGC(t, store, func(c *snapshot.GCConfig) {
			c.Now = clockAt(6 * time.Hour)
			c.Trims = vchannelTrims{"vb": acks[35].ID}
		})
		if n, err := vg.RetireTrimmed(ctx, pch); err != nil || n != 2 {
			t.Errorf("retire below vb's trim point: %d, %v; want vb's files of rounds 2 and 3", n, err)
		}
		cp, _, _ = sl.ReadCheckpoint(ctx, store, testLayout, pch)
		for _, ref := range cp.Segments {
			if ref.VChannel == "vb" && ref.LastOffset < acks[35].ID.Offset {
				t.Errorf("%s still in the manifest below vb's trim point", ref.Key)
			}
			if ref.VChannel == "va" && ref.LastOffset < point.Offset {
				t.Errorf("%s still in the manifest below the trim point", ref.Key)
			}
		}
	})
}

func segmentKeys(t testing.TB, store objstore.Store) []string {
	t.Helper()
	return listKeys(t, store, snapshot.SegmentsPrefix(testLayout))
}

// TestTrimPassesAScan: a scan reading segments that a trim passes, and
// whose next files GC then deletes, fails with a TruncatedError naming the
// trim point after the messages it could still read: never a silent gap.
func TestTrimPassesAScan(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	const pch = "tscan"
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	flusher := newFlusher(t, store, pch, nil)
	var acks []sl.Ack
	for round := range 3 {
		acks = append(acks, appendN(t, w, "t", round*10, 10, "va")...)
		if _, err := flusher.FlushNow(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: pch, Layout: testLayout, From: sl.Earliest(), NoWait: true,
		Segments: snapshot.NewSegmentReader(store, 0)}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	first, err := sc.Next(ctx)
	if err != nil || first.ID != acks[0].ID {
		t.Fatalf("first: %v, %v", first.ID, err)
	}
	point := acks[25].ID
	if _, err := snapshot.Trim(ctx, store, testLayout, pch, point, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := newGC(t, store, nil).RetireTrimmed(ctx, pch); err != nil {
		t.Fatal(err)
	}
	if err := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(3 * time.Hour) }).Collect(ctx); err != nil {
		t.Fatal(err)
	}
	next := 1
	for {
		d, err := sc.Next(ctx)
		var te *sl.TruncatedError
		if errors.As(err, &te) {
			if te.Earliest != point {
				t.Fatalf("I12: truncated with earliest %v, want %v", te.Earliest, point)
			}
			break
		}
		if err != nil {
			t.Fatalf("I12: after %d messages: %v; want a TruncatedError", next, err)
		}
		if d.ID != acks[next].ID {
			t.Fatalf("I12: message %d is %v, want %v: the scan skipped", next, d.ID, acks[next].ID)
		}
		next++
	}
	if next >= 25 {
		t.Fatalf("I12: the scan read %d messages past the deleted files", next)
	}
}
