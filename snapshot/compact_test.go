package snapshot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

var producerSeq atomic.Int64

func newCompactor(tb testing.TB, store objstore.Store, pch string, mod func(*snapshot.CompactConfig)) *snapshot.Compactor {
	tb.Helper()
	cfg := snapshot.CompactConfig{PChannel: pch, Layout: testLayout, Logger: quietLog, MinRefs: 1, MinFiles: 4,
		GetTimeout: time.Second, PutTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := snapshot.NewCompactor(cfg, store)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// compactAll compacts until a Compact merges nothing more.
func compactAll(tb testing.TB, c *snapshot.Compactor) (merges int) {
	tb.Helper()
	for {
		res, err := c.Compact(context.Background())
		if err != nil {
			tb.Fatalf("compact: %v", err)
		}
		if len(res.Merges) == 0 {
			return merges
		}
		merges += len(res.Merges)
	}
}

// checkpointSize returns the checkpoint record and its size in bytes.
func checkpointSize(tb testing.TB, store objstore.Store, pch string) (sl.Checkpoint, int) {
	tb.Helper()
	obj, err := store.Get(context.Background(), testLayout.Checkpoint(pch))
	if err != nil {
		tb.Fatal(err)
	}
	cp, _, err := sl.ReadCheckpoint(context.Background(), store, testLayout, pch)
	if err != nil {
		tb.Fatal(err)
	}
	return cp, len(obj.Body)
}

// manifestBytes is the JSON size of the checkpoint's manifest and inline
// Retired list.
func manifestBytes(tb testing.TB, cp sl.Checkpoint) int {
	a, err := json.Marshal(cp.Segments)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(cp.Retired)
	if err != nil {
		tb.Fatal(err)
	}
	return len(a) + len(b)
}

// retiredFiles returns the files retired from pch's manifest and not yet
// released by GC (snapshot.RetiredFiles).
func retiredFiles(tb testing.TB, store objstore.Store, pch string) []sl.RetiredSegment {
	tb.Helper()
	ret, err := snapshot.RetiredFiles(context.Background(), store, testLayout, pch)
	if err != nil {
		tb.Fatal(err)
	}
	return ret
}

// checkManifestFiles checks I10 for a checkpoint: every file it names
// exists.
func checkManifestFiles(tb testing.TB, store objstore.Store, cp sl.Checkpoint) {
	tb.Helper()
	for _, ref := range cp.Segments {
		if _, err := store.Head(context.Background(), ref.Key); err != nil {
			tb.Errorf("I10: manifest names %s: %v", ref.Key, err)
		}
	}
}

// checkIntact checks pch after a test's rounds: every file its manifest
// names exists (I10), and a read from the start delivers every ack once, in
// order, from segments and WAL.
func checkIntact(tb testing.TB, store objstore.Store, pch string, acks []sl.Ack) {
	tb.Helper()
	cp, _ := checkpointSize(tb, store, pch)
	checkManifestFiles(tb, store, cp)
	checkNoGapNoDup(tb, scanAll(tb, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil), acks)
}

// flushedRounds appends rounds×perRound messages over vchannels, flushing
// after each round: one manifest reference per vchannel per round. Each
// call is a producer of its own (a repeated key would be a duplicate).
func flushedRounds(tb testing.TB, store objstore.Store, w *sl.Writer, f *snapshot.Flusher, rounds, perRound int, vchannels ...string) []sl.Ack {
	tb.Helper()
	var acks []sl.Ack
	producer := fmt.Sprintf("p%d", producerSeq.Add(1))
	for r := 0; r < rounds; r++ {
		acks = append(acks, appendN(tb, w, producer, r*perRound, perRound, vchannels...)...)
		if _, err := f.FlushNow(context.Background()); err != nil {
			tb.Fatalf("flush %d: %v", r, err)
		}
	}
	return acks
}

// TestCompactPreservesReads: after many flush rounds, compaction and a GC
// past the retirement grace, every read path (from the earliest, from an
// ID, from a timetick, one vchannel) delivers exactly what it delivered
// before, field by field; the manifest shrinks and every file it names
// exists; the retired files are gone.
func TestCompactPreservesReads(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		const pch = "compact"
		w := openWriter(t, store, pch, nil)
		defer w.Close(ctx)
		f := newFlusher(t, store, pch, nil)
		acks := flushedRounds(t, store, w, f, 24, 9, "va", "vb", "vc")
		acks = append(acks, appendN(t, w, "tail", 0, 7, "va", "vb")...) // some WAL above C

		segs := snapshot.NewSegmentReader(store, 0)
		reads := map[string]func() []sl.Delivery{
			"earliest": func() []sl.Delivery { return scanAll(t, store, pch, sl.Earliest(), segs, nil) },
			"from-id":  func() []sl.Delivery { return scanAll(t, store, pch, sl.AtID(acks[61].ID), segs, nil) },
			"from-tick": func() []sl.Delivery {
				return scanAll(t, store, pch, sl.AtTimeTick(acks[130].TimeTick), segs, nil)
			},
			"vchannel": func() []sl.Delivery {
				return scanAll(t, store, pch, sl.Earliest(), segs, func(c *sl.ScannerConfig) { c.VChannels = []string{"vb"} })
			},
		}
		want := map[string][]sl.Delivery{}
		for name, read := range reads {
			want[name] = read()
		}
		checkNoGapNoDup(t, want["earliest"], acks)
		before, beforeBytes := checkpointSize(t, store, pch)

		// Compaction stamps RetiredAt an hour ahead, so that a GC clock 90
		// minutes ahead finds the old files past OrphanAge by their own age
		// and still inside their retirement grace.
		c := newCompactor(t, store, pch, func(c *snapshot.CompactConfig) { c.Now = clockAt(time.Hour) })
		merges := compactAll(t, c)
		after, afterBytes := checkpointSize(t, store, pch)
		retired := retiredFiles(t, store, pch)
		t.Logf("24 flush rounds over 3 vchannels: %d merges; manifest %d refs (%d manifest bytes, %d checkpoint bytes) before, %d refs (%d manifest bytes, %d checkpoint bytes; %d files in retired lists) after",
			merges, len(before.Segments), manifestBytes(t, before), beforeBytes, len(after.Segments), manifestBytes(t, after), afterBytes, len(retired))
		if merges == 0 || len(after.Segments) >= len(before.Segments) {
			t.Fatalf("compaction did not shrink the manifest: %d refs → %d", len(before.Segments), len(after.Segments))
		}
		if after.C != before.C || after.MaxTerm != before.MaxTerm || after.FlushID != before.FlushID || after.LastTimeTick != before.LastTimeTick || len(after.Dedup) != len(before.Dedup) {
			t.Errorf("compaction changed more than the manifest: %+v → %+v", before, after)
		}
		for _, ref := range before.Segments {
			if strings.HasSuffix(ref.Key, before.FlushID+".arrow") && !containsKey(after.Segments, ref.Key) {
				t.Errorf("the current flush's file %s was compacted away", ref.Key)
			}
		}

		// Inside the grace: GC keeps every retired file.
		gcIn := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(90 * time.Minute) })
		if err := gcIn.Collect(ctx); err != nil {
			t.Fatal(err)
		}
		if len(retired) != len(before.Segments)+merges-len(after.Segments) {
			t.Errorf("%d files in retired lists; the merges took %d out of the manifest", len(retired), len(before.Segments)+merges-len(after.Segments))
		}
		for _, ret := range retired {
			if _, err := store.Head(ctx, ret.Key); err != nil {
				t.Errorf("retired %s deleted inside its grace: %v", ret.Key, err)
			}
		}
		// Past it: the entries go, then the files.
		gcOut := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(2*time.Hour + time.Minute) })
		if err := gcOut.Collect(ctx); err != nil {
			t.Fatal(err)
		}
		final, finalBytes := checkpointSize(t, store, pch)
		t.Logf("after GC past the grace: %d refs, %d manifest bytes, %d checkpoint bytes", len(final.Segments), manifestBytes(t, final), finalBytes)
		if left := retiredFiles(t, store, pch); len(left) != 0 {
			t.Errorf("%d retired entries left past their grace", len(left))
		}
		for _, ret := range retired {
			if _, err := store.Head(ctx, ret.Key); !errors.Is(err, objstore.ErrNotFound) {
				t.Errorf("retired %s still there past its grace: %v", ret.Key, err)
			}
		}
		checkManifestFiles(t, store, final)
		for name, read := range reads {
			sameDeliveries(t, name, read(), want[name])
		}
	})
}

func containsKey(refs []sl.SegmentRef, key string) bool {
	for _, r := range refs {
		if r.Key == key {
			return true
		}
	}
	return false
}

// TestCompactBoundsManifest: 240 flush rounds over 3 vchannels with a
// compaction every 10 rounds, and GC pruning Retired entries whose grace
// is over (its clock is 2 h ahead). Without compaction the manifest would
// hold 720 references; with it, it stays within a size-tiered bound, and
// so does the record's size.
func TestCompactBoundsManifest(t *testing.T) {
	store := objstore.NewMemory()
	ctx := context.Background()
	const pch, rounds = "bounded", 240
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	f := newFlusher(t, store, pch, nil)
	c := newCompactor(t, store, pch, func(c *snapshot.CompactConfig) { c.MinFiles = 8 })
	gc := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(2 * time.Hour) })
	var acks []sl.Ack
	maxRefs, maxBytes, maxManifest := 0, 0, 0
	for r := 0; r < rounds; r += 10 {
		acks = append(acks, flushedRounds(t, store, w, f, 10, 3, "va", "vb", "vc")...)
		compactAll(t, c)
		if _, err := gc.PruneRetired(ctx, pch); err != nil {
			t.Fatal(err)
		}
		cp, n := checkpointSize(t, store, pch)
		maxRefs, maxBytes, maxManifest = max(maxRefs, len(cp.Segments)), max(maxBytes, n), max(maxManifest, manifestBytes(t, cp))
	}
	cp, n := checkpointSize(t, store, pch)
	t.Logf("%d flush rounds: %d refs uncompacted; with compaction at most %d refs, %d manifest bytes (segments and retired), %d checkpoint bytes (the rest is the dedup window); at the end %d refs / %d bytes (%d retired)",
		rounds, 3*rounds, maxRefs, maxManifest, maxBytes, len(cp.Segments), n, len(cp.Retired))
	// Size-tiered: under 2·MinFiles files per tier and vchannel, and the
	// tiers of 240 equal files number at most 6.
	if bound := 3 * 2 * 8 * 6; maxRefs > bound {
		t.Errorf("manifest reached %d refs, above the bound %d", maxRefs, bound)
	}
	if uncompacted := 3 * rounds * 150; maxManifest > uncompacted/10 {
		t.Errorf("the manifest reached %d bytes, more than a tenth of the ≈%d an uncompacted one takes", maxManifest, uncompacted)
	}
	checkNoGapNoDup(t, scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil), acks)
}

// lostCheckpointReply applies checkpoint writes but loses the reply of the
// first n (the caller sees a retryable timeout).
type lostCheckpointReply struct {
	objstore.Store
	n atomic.Int64
}

func (l *lostCheckpointReply) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	tag, err := l.Store.PutIfMatch(ctx, key, body, etag)
	if err == nil && strings.Contains(key, "/meta/checkpoints/") && l.n.Add(-1) >= 0 {
		return "", objstore.ErrTransient
	}
	return tag, err
}

// TestCompactLostReply: a compaction CAS lands but its reply is lost.
// Compact settles it by reading the record back: each merge is reported
// committed once, the record holds each merged file once, and no version
// is written twice.
func TestCompactLostReply(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		const pch = "lostreply"
		w := openWriter(t, store, pch, nil)
		defer w.Close(ctx)
		acks := flushedRounds(t, store, w, newFlusher(t, store, pch, nil), 12, 4, "va", "vb")
		before, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
		if err != nil {
			t.Fatal(err)
		}
		lost := &lostCheckpointReply{Store: store}
		lost.n.Store(1)
		res, err := newCompactor(t, lost, pch, nil).Compact(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if lost.n.Load() > 0 {
			t.Fatal("no reply was lost: the test proves nothing")
		}
		cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
		if err != nil {
			t.Fatal(err)
		}
		// One CAS per merge, the first one's reply lost.
		if n := uint64(len(res.Merges)); n == 0 || res.Abandoned != 0 || res.Version != before.Version+n || cp.Version != before.Version+n {
			t.Errorf("compaction of %d merges (%d abandoned) at version %d, checkpoint version %d → %d: want each merge committed once, one version each",
				len(res.Merges), res.Abandoned, res.Version, before.Version, cp.Version)
		}
		for _, m := range res.Merges {
			n := 0
			for _, r := range cp.Segments {
				if r.Key == m.Merged.Key {
					n++
				}
			}
			if n != 1 {
				t.Errorf("merged %s in the manifest %d times", m.Merged.Key, n)
			}
		}
		checkNoGapNoDup(t, scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil), acks)
	})
}

// TestCompactConcurrentFlush: a writer appends while a flusher loop and two
// compactor loops work on the pchannel, and GC collects with a clock past
// every grace. Flush rounds and compactions that meet each other's CAS
// resolve it (a flush rebases over a manifest-only change, a compaction
// re-applies or abandons); at the end every acked message is read back
// once, and every file the manifest names exists.
func TestCompactConcurrentFlush(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const pch = "concurrent"
		w := openWriter(t, store, pch, nil)
		defer w.Close(context.Background())
		var flushes, merges, abandoned atomic.Int64
		f := newFlusher(t, store, pch, func(c *snapshot.FlushConfig) {
			c.MinBytes, c.Interval = 1, 5*time.Millisecond
			c.OnRound = func(snapshot.Round) { flushes.Add(1) }
		})
		var bg sync.WaitGroup
		bg.Add(1)
		go func() { defer bg.Done(); f.Run(ctx) }()
		for i := 0; i < 2; i++ {
			c := newCompactor(t, store, pch, nil)
			bg.Add(1)
			go func() {
				defer bg.Done()
				for ctx.Err() == nil {
					res, err := c.Compact(ctx)
					if err != nil && ctx.Err() == nil {
						t.Errorf("compact: %v", err)
						return
					}
					merges.Add(int64(len(res.Merges)))
					abandoned.Add(int64(res.Abandoned))
					time.Sleep(3 * time.Millisecond)
				}
			}()
		}
		gc := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(3 * time.Hour) })
		bg.Add(1)
		go func() {
			defer bg.Done()
			for ctx.Err() == nil {
				if _, err := gc.PruneRetired(ctx, pch); err != nil && ctx.Err() == nil {
					t.Errorf("prune: %v", err)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		var acks []sl.Ack
		for i := 0; i < 40; i++ {
			acks = append(acks, appendN(t, w, "p", i*4, 4, "va", "vb", "vc")...)
			time.Sleep(5 * time.Millisecond)
		}
		testkit.Within(t, 10*time.Second, func() bool { return merges.Load() >= 3 }) // the check below asks for one
		cancel()
		bg.Wait()
		if _, err := newFlusher(t, store, pch, nil).FlushNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d flush rounds, %d merges committed, %d abandoned", flushes.Load(), merges.Load(), abandoned.Load())
		if merges.Load() == 0 {
			t.Fatal("nothing was compacted: the test proves nothing")
		}
		cp, _ := checkpointSize(t, store, pch)
		checkManifestFiles(t, store, cp)
		checkNoGapNoDup(t, scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil), acks)
	})
}

// TestScannerAcrossRetirement: a scanner opens on an old manifest and reads
// part of it; compaction retires the files it has still to read and GC,
// past the grace, deletes them. The scanner meets the missing files,
// re-reads the checkpoint, reopens at its next ID under the merged files,
// and delivers every message once, in order.
func TestScannerAcrossRetirement(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		const pch = "stale"
		w := openWriter(t, store, pch, nil)
		defer w.Close(ctx)
		acks := flushedRounds(t, store, w, newFlusher(t, store, pch, nil), 16, 4, "va", "vb")
		want := scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil)

		sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: pch, Layout: testLayout, From: sl.Earliest(), NoWait: true,
			Segments: snapshot.NewSegmentReader(store, 0)}, store)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		var got []sl.Delivery
		for len(got) < 5 {
			d, err := sc.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, d)
		}
		if compactAll(t, newCompactor(t, store, pch, nil)) == 0 {
			t.Fatal("nothing was compacted")
		}
		res, err := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(2 * time.Hour) }).PruneRetired(ctx, pch)
		if err != nil || res == 0 {
			t.Fatalf("prune: %d, %v", res, err)
		}
		orphans, err := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(2 * time.Hour) }).CollectOrphans(ctx)
		if err != nil || orphans.Deleted == 0 {
			t.Fatalf("collect: %+v, %v", orphans, err)
		}
		got = append(got, testkit.ScanToTail(t, ctx, sc)...)
		sameDeliveries(t, "stale scanner", got, want)
		checkNoGapNoDup(t, got, acks)
	})
}

// TestScannerMissingSegmentReported: a file missing from the current
// manifest (I10 broken, not a retirement) is still an error, wrapping
// segmentlog.ErrSegmentMissing.
func TestScannerMissingSegmentReported(t *testing.T) {
	store := objstore.NewMemory()
	ctx := context.Background()
	const pch = "broken"
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	flushedRounds(t, store, w, newFlusher(t, store, pch, nil), 2, 4, "va")
	cp, _ := checkpointSize(t, store, pch)
	if err := store.Delete(ctx, cp.Segments[0].Key); err != nil {
		t.Fatal(err)
	}
	_, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: pch, Layout: testLayout, From: sl.Earliest(), NoWait: true,
		Segments: snapshot.NewSegmentReader(store, 0)}, store)
	if !errors.Is(err, sl.ErrSegmentMissing) || !errors.Is(err, snapshot.ErrMissingSegment) {
		t.Fatalf("scan over a deleted manifest file: %v, want ErrSegmentMissing", err)
	}
}

// TestSnapshotConcurrentWithCompaction: snapshots are created while
// compactors rewrite the manifest they cut from and GC (past every grace)
// collects; each snapshot restores to exactly the messages of its
// vchannel acked before it was created.
func TestSnapshotConcurrentWithCompaction(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const pch = "p1"
		reg := newFakeRegistry(map[string]string{"va": pch, "vb": pch})
		w := openWriter(t, store, pch, nil)
		defer w.Close(context.Background())
		// Flushes and merges commit within a third of GC's orphan age
		// below, or give up (docs/protocol.md S, kept on a loaded machine too).
		f := newFlusher(t, store, pch, func(c *snapshot.FlushConfig) { c.CommitWithin = time.Second })
		flushedRounds(t, store, w, f, 12, 4, "va", "vb")
		var bg sync.WaitGroup
		var merges atomic.Int64
		c := newCompactor(t, store, pch, func(c *snapshot.CompactConfig) { c.CommitWithin = time.Second })
		bg.Add(1)
		go func() {
			defer bg.Done()
			for ctx.Err() == nil {
				res, err := c.Compact(ctx)
				if err != nil && ctx.Err() == nil {
					t.Errorf("compact: %v", err)
					return
				}
				merges.Add(int64(len(res.Merges)))
			}
		}()
		// GC on the real clock with a short OrphanAge (the grace of
		// retired files too): still far longer than a compaction or a
		// snapshot's cut-to-commit takes, as docs/protocol.md's S must be.
		gc := newGC(t, store, func(c *snapshot.GCConfig) { c.OrphanAge = 3 * time.Second })
		bg.Add(1)
		go func() {
			defer bg.Done()
			for ctx.Err() == nil {
				if err := gc.Collect(ctx); err != nil && ctx.Err() == nil {
					t.Errorf("gc: %v", err)
				}
			}
		}()
		snaps := newSnapshots(t, store, reg)
		for i := 0; i < 4; i++ {
			flushedRounds(t, store, w, f, 4, 4, "va", "vb")
			name := "s" + string(rune('0'+i))
			if _, err := snaps.Create(ctx, name, []string{"va"}); err != nil {
				t.Fatal(err)
			}
			job, err := snaps.Restore(ctx, "j"+name, name, map[string]string{"va": "ra" + name})
			if err != nil {
				t.Fatal(err)
			}
			it, err := snaps.OpenRestored(ctx, job.ID, "ra"+name, sl.MessageID{})
			got := drainIter(t, it, err)
			wantVA := onlyVChannel(scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil), "va")
			if len(got) != len(wantVA) {
				t.Errorf("snapshot %s restores %d messages of va, want %d", name, len(got), len(wantVA))
			}
			for j := range min(len(got), len(wantVA)) {
				if got[j].ID != wantVA[j].ID {
					t.Errorf("snapshot %s message %d is %v, want %v", name, j, got[j].ID, wantVA[j].ID)
					break
				}
			}
		}
		cancel()
		bg.Wait()
		if merges.Load() == 0 {
			t.Error("nothing was compacted: the test proves nothing")
		}
		// Past every grace, the snapshots' and restores' files stay (I10).
		if err := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(3 * time.Hour) }).Collect(context.Background()); err != nil {
			t.Fatal(err)
		}
		list, err := snaps.List(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			for _, ref := range s.Segments {
				if _, err := store.Head(context.Background(), ref.Key); err != nil {
					t.Errorf("I10: snapshot %s names %s: %v", s.Name, ref.Key, err)
				}
			}
		}
	})
}

// casHook runs hook once, just before the first checkpoint CAS through it.
type casHook struct {
	objstore.Store
	once sync.Once
	hook func()
}

func (c *casHook) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	if strings.Contains(key, "/meta/checkpoints/") {
		c.once.Do(c.hook)
	}
	return c.Store.PutIfMatch(ctx, key, body, etag)
}

// TestFlushRebasesOverCompaction: a compaction commits between a flush
// round's read of the checkpoint and its CAS. The flush does not lose the
// race: it commits the same round, with the same files, on top of the
// compacted manifest, and leaves no orphan.
func TestFlushRebasesOverCompaction(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		const pch = "rebase"
		w := openWriter(t, store, pch, nil)
		defer w.Close(ctx)
		acks := flushedRounds(t, store, w, newFlusher(t, store, pch, nil), 8, 4, "va", "vb")
		acks = append(acks, appendN(t, w, "late", 0, 6, "va", "vb")...)
		var merges int
		hooked := &casHook{Store: store, hook: func() { merges = compactAll(t, newCompactor(t, store, pch, nil)) }}
		rounds, err := newFlusher(t, hooked, pch, nil).FlushNow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if merges == 0 {
			t.Fatal("nothing was compacted under the flush: the test proves nothing")
		}
		cp, _ := checkpointSize(t, store, pch)
		if len(rounds) != 1 || rounds[0].Version != cp.Version || cp.FlushID != rounds[0].FlushID {
			t.Errorf("flush rounds %+v, checkpoint version %d by %s: want one round, committed over the compaction", rounds, cp.Version, cp.FlushID)
		}
		named := map[string]bool{}
		for _, r := range cp.Segments {
			named[r.Key] = true
		}
		for _, r := range retiredFiles(t, store, pch) {
			named[r.Key] = true
		}
		for _, k := range listKeys(t, store, snapshot.SegmentsPrefix(testLayout)) {
			if !named[k] {
				t.Errorf("orphan %s: a flush or compaction lost a race", k)
			}
		}
		checkManifestFiles(t, store, cp)
		checkNoGapNoDup(t, scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil), acks)
	})
}

// getHook runs hook once, before the first GET of a segment file through
// it.
type getHook struct {
	objstore.Store
	once sync.Once
	hook func()
}

func (g *getHook) Get(ctx context.Context, key string) (objstore.Object, error) {
	if strings.HasSuffix(key, ".arrow") {
		g.once.Do(g.hook)
	}
	return g.Store.Get(ctx, key)
}

// TestCompactStalePlan: while a compactor reads the files of its plan,
// another compacts the same runs and GC, past the grace, deletes them. The
// first finds them missing, sees that the checkpoint no longer names them,
// and abandons its runs: no error, and nothing lost.
func TestCompactStalePlan(t *testing.T) {
	store := objstore.NewMemory()
	ctx := context.Background()
	const pch = "staleplan"
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	acks := flushedRounds(t, store, w, newFlusher(t, store, pch, nil), 10, 4, "va", "vb")
	var other int
	hooked := &getHook{Store: store, hook: func() {
		other = compactAll(t, newCompactor(t, store, pch, nil))
		gc := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(3 * time.Hour) })
		if err := gc.Collect(ctx); err != nil {
			t.Error(err)
		}
	}}
	res, err := newCompactor(t, hooked, pch, nil).Compact(ctx)
	if err != nil {
		t.Fatalf("compact on a stale plan: %v", err)
	}
	if other == 0 || res.Abandoned == 0 || len(res.Merges) != 0 {
		t.Errorf("the other compactor merged %d runs; this one %+v: want every run abandoned", other, res)
	}
	checkIntact(t, store, pch, acks)
}

// TestCommitDeadlines: a merge or a flush round whose files were written
// longer ago than CommitWithin is not committed (GC may already have taken
// its files for orphans): the merge is abandoned, the round given up as a
// lost race, and the manifest names nothing new.
func TestCommitDeadlines(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	const pch = "deadline"
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	f := newFlusher(t, store, pch, nil)
	flushedRounds(t, store, w, f, 10, 2, "v0")
	before, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
	if err != nil {
		t.Fatal(err)
	}

	late := newCompactor(t, store, pch, func(c *snapshot.CompactConfig) { c.MinRefs, c.MinFiles, c.CommitWithin = 1, 2, time.Nanosecond })
	res, err := late.Compact(ctx)
	if err != nil || len(res.Merges) != 0 || res.Abandoned == 0 {
		t.Fatalf("compaction past its commit deadline: %+v, %v; want every merge abandoned", res, err)
	}
	cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
	if err != nil || cp.Version != before.Version || !slices.Equal(cp.Segments, before.Segments) {
		t.Fatalf("checkpoint after abandoned merges: version %d (was %d), %d files (were %d), %v", cp.Version, before.Version, len(cp.Segments), len(before.Segments), err)
	}

	appendN(t, w, "late-flush", 0, 2, "v0")
	lateFlush := newFlusher(t, store, pch, func(c *snapshot.FlushConfig) { c.CommitWithin, c.MaxRounds = time.Nanosecond, 2 })
	if _, err := lateFlush.FlushNow(ctx); !errors.Is(err, snapshot.ErrLostRace) {
		t.Fatalf("flush past its commit deadline: %v, want ErrLostRace", err)
	}
	if cp, _, err = sl.ReadCheckpoint(ctx, store, testLayout, pch); err != nil || cp.Version != before.Version {
		t.Fatalf("checkpoint after a given-up flush: version %d (was %d), %v", cp.Version, before.Version, err)
	}
	// With time enough, both go through.
	if _, err := f.FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := newCompactor(t, store, pch, func(c *snapshot.CompactConfig) { c.MinRefs, c.MinFiles = 1, 2 }).Compact(ctx); err != nil || len(res.Merges) == 0 {
		t.Fatalf("compaction in time: %+v, %v", res, err)
	}
}
