package snapshot_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/objstoretest"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// TestTortureStaleRecovery is a fault schedule the random torture reaches
// only by chance: a writer's process reads the checkpoint, is frozen before
// it sees the answer, and thaws after a flush moved the checkpoint and GC
// emptied the WAL behind it; the previous holder crashed, so the lease's
// tail hint (0) does not reveal that the slots the replay finds empty were
// collected. Recovery must re-read the checkpoint and fence above it
// (Fence 1 and 4); a fence placed in the collected slots would put the new
// holder's acked messages below the checkpoint, where no reader looks (I1).
func TestTortureStaleRecovery(t *testing.T) {
	// Every step is bounded, so that a broken rule shows as a failed check,
	// never as a hang.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const pch = "stale"
	base := objstore.NewMemory()
	ttl := 300 * time.Millisecond
	open := func(store objstore.Store, holder string) (*sl.Writer, error) {
		return sl.OpenWriter(ctx, sl.WriterConfig{PChannel: pch, Layout: testLayout, Holder: holder, Logger: quietLog,
			PutTimeout: ttl / 8, GetTimeout: ttl / 8, RenewInterval: ttl / 6, TimeTickInterval: -1}, store, newLeases(t, store, ttl))
	}

	// A writes, part of it is flushed, then A's process dies: no release.
	pa := &objstoretest.Process{Store: base}
	a, err := open(pa, "a")
	if err != nil {
		t.Fatal(err)
	}
	// Unkeyed: with keys the checkpoint names a dedup state object, which
	// the next flush deletes, and a stale recovery then starts over for
	// that reason alone; without, only Fence 1 and 4 catch it.
	plain := func(from, n int) []sl.Ack {
		var acks []sl.Ack
		for i := from; i < from+n; i++ {
			a, err := a.Append(ctx, sl.Message{Type: sl.TypeData, VChannel: []string{"v0", "v1"}[i%2], Payload: fmt.Appendf(nil, "a/%d", i)})
			if err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
			acks = append(acks, a...)
		}
		return acks
	}
	acked := plain(0, 40)
	flusher := newFlusher(t, base, pch, nil)
	if _, err := flusher.FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	acked = append(acked, plain(40, 40)...)
	pa.Crash(1)
	_ = a.Close(ctx)

	// A's lease runs out.
	testkit.EventuallyNil(t, 10*ttl, "A's lease lapses", func() error {
		l, err := newLeases(t, base, ttl).Describe(ctx, pch)
		if err == nil && !time.Now().After(l.Expires.Add(ttl/4)) {
			err = fmt.Errorf("lease %+v", l)
		}
		return err
	})

	// B's process reads the checkpoint and freezes with the answer unread;
	// its acquire, a moment slower, goes out only at the thaw.
	pb := &objstoretest.Process{Store: base}
	slow := &slowGet{Store: pb, key: testLayout.Lease(pch), delay: 50 * time.Millisecond}
	froze := pb.FreezeAfterReply(func(k string) bool { return k == testLayout.Checkpoint(pch) })
	type opened struct {
		w   *sl.Writer
		err error
	}
	bc := make(chan opened, 1)
	go func() {
		w, err := open(slow, "b")
		bc <- opened{w, err}
	}()
	select {
	case <-froze:
	case <-ctx.Done():
		t.Fatal("schedule: B's checkpoint read never came back")
	}
	stale, _, err := sl.ReadCheckpoint(ctx, base, testLayout, pch)
	if err != nil {
		t.Fatal(err)
	}
	// Meanwhile a flush moves the checkpoint to A's tail, and GC (its clock
	// two hours on) empties every WAL slot below it but A's window.
	if _, err := flusher.FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	gc := newGC(t, base, func(c *snapshot.GCConfig) { c.Now = clockAt(2 * time.Hour) })
	res, err := gc.CollectWAL(ctx, pch)
	if err != nil {
		t.Fatal(err)
	}
	cp, _, err := sl.ReadCheckpoint(ctx, base, testLayout, pch)
	if err != nil {
		t.Fatal(err)
	}
	if cp.C <= stale.C || res.Deleted == 0 {
		t.Fatalf("schedule: the checkpoint went %d → %d and GC deleted %d slots; the state was not reached", stale.C, cp.C, res.Deleted)
	}
	// B thaws, acquires (within a TTL of starting, so its lease deadline
	// is still ahead), and recovers.
	pb.Thaw(0)
	var ob opened
	select {
	case ob = <-bc:
	case <-ctx.Done():
		t.Fatal("I11: B's open did not return")
	}
	if ob.err != nil {
		t.Fatalf("I11: B cannot open the pchannel: %v", ob.err)
	}
	acked = append(acked, appendN(t, ob.w, "b", 0, 10, "v0", "v1")...)
	if err := ob.w.Close(ctx); err != nil {
		t.Fatal(err)
	}

	got := scanAll(t, base, pch, sl.Earliest(), snapshot.NewSegmentReader(base, 0), nil)
	delivered := make(map[sl.MessageID]bool)
	for _, d := range got {
		delivered[d.ID] = true
	}
	for i, a := range acked {
		if !delivered[a.ID] {
			t.Errorf("I1: ack %d at %v (checkpoint %d, stale read %d) never delivered", i, a.ID, cp.C, stale.C)
		}
	}
	if fence := ob.w.Stats().FenceOffset; fence < cp.C {
		t.Errorf("I6: B fenced at %d, below the checkpoint %d", fence, cp.C)
	}
	if t.Failed() {
		return
	}
	t.Logf("checkpoint %d read, %d by the fence; %d WAL slots collected meanwhile; %d messages read back", stale.C, cp.C, res.Deleted, len(got))
}

// slowGet delays the first Get of one key before it reaches the store
// below.
type slowGet struct {
	objstore.Store
	key   string
	delay time.Duration
	done  atomic.Bool
}

func (s *slowGet) Get(ctx context.Context, key string) (objstore.Object, error) {
	if key == s.key && !s.done.Swap(true) {
		time.Sleep(s.delay)
	}
	return s.Store.Get(ctx, key)
}

func (s *slowGet) GetIfNoneMatch(ctx context.Context, key, etag string) (objstore.Object, error) {
	if key == s.key && !s.done.Swap(true) {
		time.Sleep(s.delay)
	}
	return s.Store.GetIfNoneMatch(ctx, key, etag)
}

// TestTortureNoWaitBehindGC: a NoWait scan (the HTTP read path, `cairn
// consume`) reads segments below the checkpoint it opened with while a
// flush moves the checkpoint and GC empties the WAL slots in between; at
// the first missing slot it must re-read the checkpoint and go on from
// segments (Reading 3), not report the tail and leave out everything acked
// after (I1).
func TestTortureNoWaitBehindGC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const pch = "nowait"
	store := objstore.NewMemory()
	w := openWriter(t, store, pch, nil)
	acked := appendN(t, w, "p", 0, 30, "v0", "v1")
	flusher := newFlusher(t, store, pch, nil)
	if _, err := flusher.FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	acked = append(acked, appendN(t, w, "p", 30, 30, "v0", "v1")...)
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: pch, Layout: testLayout, From: sl.Earliest(), NoWait: true,
		Segments: snapshot.NewSegmentReader(store, 0)}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	first, err := sc.Next(ctx) // the scan is under way in the segments of the first flush
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flusher.FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	gc := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(2 * time.Hour) })
	if res, err := gc.CollectWAL(ctx, pch); err != nil || res.Deleted == 0 {
		t.Fatalf("schedule: GC deleted %+v, %v; the state was not reached", res, err)
	}
	got := append([]sl.Delivery{first}, testkit.ScanToTail(t, ctx, sc)...)
	delivered := make(map[sl.MessageID]bool)
	for _, d := range got {
		delivered[d.ID] = true
	}
	for i, a := range acked {
		if !delivered[a.ID] {
			t.Errorf("I1: a NoWait scan reported the tail without ack %d at %v (read %d messages)", i, a.ID, len(got))
			break
		}
	}
}

// TestTortureSnapshotAcrossCompaction: a snapshot reads the manifest it
// cuts from, and its process freezes before it commits; compaction merges
// the files it names, and GC runs, past the orphan age of those files (they
// are old) but within the retirement grace of the merge. The snapshot then
// commits the refs it read: every one must still exist (I10) — the files
// compaction retired are kept for the grace exactly so.
func TestTortureSnapshotAcrossCompaction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const pch = "p1"
	store := objstore.NewMemory()
	reg := newFakeRegistry(map[string]string{"va": pch, "vb": pch})
	w := openWriter(t, store, pch, nil)
	defer w.Close(context.Background())
	f := newFlusher(t, store, pch, nil)
	flushedRounds(t, store, w, f, 12, 4, "va", "vb")

	// The snapshot's process freezes after its second read of the
	// checkpoint: the first is its flush's, the second the cut's.
	ps := &objstoretest.Process{Store: store}
	reads := 0
	froze := ps.FreezeAfterReply(func(k string) bool {
		if k != testLayout.Checkpoint(pch) {
			return false
		}
		reads++
		return reads == 2
	})
	snaps := newSnapshots(t, ps, reg)
	type created struct {
		s   snapshot.Snapshot
		err error
	}
	done := make(chan created, 1)
	go func() {
		s, err := snaps.Create(ctx, "s", []string{"va"})
		done <- created{s, err}
	}()
	select {
	case <-froze:
	case <-ctx.Done():
		t.Fatal("schedule: the snapshot never read its cut")
	}
	// Two hours on for compaction and GC: the small files are far past
	// the orphan age, and compaction retires them at that time.
	later := clockAt(2 * time.Hour)
	res, err := newCompactor(t, store, pch, func(c *snapshot.CompactConfig) { c.Now = later }).Compact(ctx)
	if err != nil || len(res.Merges) == 0 {
		t.Fatalf("schedule: compaction merged %+v, %v; the state was not reached", res, err)
	}
	if err := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = later }).Collect(ctx); err != nil {
		t.Fatal(err)
	}
	ps.Thaw(0)
	var c created
	select {
	case c = <-done:
	case <-ctx.Done():
		t.Fatal("I11: the snapshot never finished")
	}
	if c.err != nil {
		t.Fatalf("I10: the snapshot could not commit what it cut: %v", c.err)
	}
	retired := 0
	for _, ref := range c.s.Segments {
		if _, err := store.Head(ctx, ref.Key); err != nil {
			t.Errorf("I10: snapshot %s names %s: %v", c.s.Name, ref.Key, err)
		}
		for _, m := range res.Merges {
			if slices.ContainsFunc(m.Replaced, func(r sl.SegmentRef) bool { return r.Key == ref.Key }) {
				retired++
			}
		}
	}
	if retired == 0 {
		t.Fatalf("schedule: the snapshot names none of the %d merged-away files", len(res.Merges))
	}
}
