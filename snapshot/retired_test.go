package snapshot_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// TestCheckpointSizeBounded: the checkpoint record stays small whatever
// the flush rate (docs/protocol.md, "Checkpoint record"). Four vchannels
// are flushed 320 times and compacted every 8 rounds, and no retirement
// grace ends meanwhile (the worst case: every file compaction took out of
// the manifest is still protected). Apart from the manifest, which
// compaction keeps within its size-tiered bound, the record does not grow
// with the rounds: the retired files are in retired lists of their own.
func TestCheckpointSizeBounded(t *testing.T) {
	store := objstore.NewMemory()
	ctx := context.Background()
	const pch, rounds, minFiles = "small", 320, 8
	vs := []string{"va", "vb", "vc", "vd"}
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	f := newFlusher(t, store, pch, nil)
	c := newCompactor(t, store, pch, func(c *snapshot.CompactConfig) { c.MinFiles = minFiles })
	maxBytes, maxRest, maxRefs, half := 0, 0, 0, 0
	for r := 0; r < rounds; r += 8 {
		flushedRounds(t, store, w, f, 8, len(vs), vs...)
		compactAll(t, c)
		cp, n := checkpointSize(t, store, pch)
		segs, err := json.Marshal(cp.Segments)
		if err != nil {
			t.Fatal(err)
		}
		maxBytes, maxRest, maxRefs = max(maxBytes, n), max(maxRest, n-len(segs)), max(maxRefs, len(cp.Segments))
		if r+8 == rounds/2 {
			half = n
		}
	}
	cp, n := checkpointSize(t, store, pch)
	t.Logf("%d flush rounds over %d vchannels, compacted every 8, no grace over: checkpoint %d bytes after %d rounds, %d after %d (at most %d; at most %d besides the manifest of at most %d refs); %d retired entries inline",
		rounds, len(vs), half, rounds/2, n, rounds, maxBytes, maxRest, maxRefs, len(cp.Retired))
	if len(cp.Retired) != 0 {
		t.Errorf("the checkpoint lists %d retired files inline", len(cp.Retired))
	}
	if ret := retiredFiles(t, store, pch); len(ret) < rounds*len(vs)/2 {
		t.Errorf("%d files in retired lists after %d flushed files were compacted", len(ret), rounds*len(vs))
	}
	if maxRest > 1024 {
		t.Errorf("the checkpoint reached %d bytes besides its manifest: it grows with the rounds", maxRest)
	}
	// Size-tiered: under 2·MinFiles files per tier and vchannel, and the
	// tiers of 320 equal files number at most 6; a reference takes under
	// 200 bytes.
	if bound := len(vs)*2*minFiles*6*200 + 1024; maxBytes > bound {
		t.Errorf("the checkpoint reached %d bytes, above the bound %d", maxBytes, bound)
	}
}

// listHook runs hook once, right after the first listing of prefix through
// it.
type listHook struct {
	objstore.Store
	prefix string
	once   sync.Once
	hook   func()
}

func (l *listHook) List(ctx context.Context, prefix, startAfter string, fn func(objstore.Attrs) error) error {
	err := l.Store.List(ctx, prefix, startAfter, fn)
	if prefix == l.prefix {
		l.once.Do(l.hook)
	}
	return err
}

// TestGCReadsRetiredListsAfterCheckpoints: a compaction commits (its
// retired list, then its CAS) while GC computes its roots, right after GC
// listed the retired lists. GC must have read the checkpoint before that
// listing: then it read the manifest that still names the files, and it
// keeps them. Read in the other order, the manifest no longer names them
// and the listing missed their list, so GC would delete files inside their
// grace, which a snapshot cut from the older manifest still names.
func TestGCReadsRetiredListsAfterCheckpoints(t *testing.T) {
	store := objstore.NewMemory()
	ctx := context.Background()
	const pch = "order"
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	acks := flushedRounds(t, store, w, newFlusher(t, store, pch, nil), 12, 4, "va", "vb")
	before, _ := checkpointSize(t, store, pch)
	// The files look 2 h old to GC, past OrphanAge by their own age; the
	// compaction retires them at GC's now, so they are inside their grace.
	merges := 0
	hooked := &listHook{Store: store, prefix: snapshot.RetiredListsPrefix(testLayout), hook: func() {
		merges = compactAll(t, newCompactor(t, store, pch, func(c *snapshot.CompactConfig) { c.Now = clockAt(2 * time.Hour) }))
	}}
	gc := newGC(t, hooked, func(c *snapshot.GCConfig) { c.Now = clockAt(2 * time.Hour) })
	res, err := gc.CollectOrphans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if merges == 0 {
		t.Fatal("no compaction ran under GC: the test proves nothing")
	}
	for _, ref := range before.Segments {
		if _, err := store.Head(ctx, ref.Key); err != nil {
			t.Errorf("I10: %s, named by manifest version %d and retired inside its grace, was deleted (%+v): a snapshot cut from that manifest names a missing file: %v",
				ref.Key, before.Version, res, err)
		}
	}
	// A second pass, with the list visible, keeps them too.
	if _, err := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(2 * time.Hour) }).CollectOrphans(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ref := range before.Segments {
		if _, err := store.Head(ctx, ref.Key); err != nil {
			t.Errorf("I10: %s deleted inside its grace by a GC that saw its retired list: %v", ref.Key, err)
		}
	}
	checkIntact(t, store, pch, acks)
}

// TestLostCompactionListKeepsLiveFiles: merges past their commit deadline
// are abandoned after their retired lists were written, so the lists name
// files the manifest still names. Past the lists' grace GC deletes the
// lists, not the files: a retired list only protects, and a file goes only
// as an orphan that no manifest names.
func TestLostCompactionListKeepsLiveFiles(t *testing.T) {
	store := objstore.NewMemory()
	ctx := context.Background()
	const pch = "lostlist"
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	acks := flushedRounds(t, store, w, newFlusher(t, store, pch, nil), 10, 2, "va")
	before, _ := checkpointSize(t, store, pch)
	late := newCompactor(t, store, pch, func(c *snapshot.CompactConfig) { c.MinRefs, c.MinFiles, c.CommitWithin = 1, 2, time.Nanosecond })
	res, err := late.Compact(ctx)
	if err != nil || len(res.Merges) != 0 || res.Abandoned == 0 {
		t.Fatalf("compaction past its commit deadline: %+v, %v; want every merge abandoned", res, err)
	}
	listed := retiredFiles(t, store, pch)
	if len(listed) == 0 {
		t.Fatal("the abandoned merges wrote no retired list: the test proves nothing")
	}
	for _, ret := range listed {
		if !containsKey(before.Segments, ret.Key) {
			t.Errorf("an abandoned merge listed %s, which the manifest never named", ret.Key)
		}
	}
	gc := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(3 * time.Hour) })
	if err := gc.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	cp, _ := checkpointSize(t, store, pch)
	if !slices.Equal(cp.Segments, before.Segments) {
		t.Errorf("the manifest changed: %d files, were %d", len(cp.Segments), len(before.Segments))
	}
	checkManifestFiles(t, store, cp)
	if left := retiredFiles(t, store, pch); len(left) != 0 {
		t.Errorf("%d files still in retired lists past their grace", len(left))
	}
	checkNoGapNoDup(t, scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil), acks)
}

// TestGCHonoursInlineRetired: a checkpoint written before retired lists
// carries its retired files inline. GC keeps them inside their grace, a
// flush and a compaction carry the entries over, and past the grace
// PruneRetired drops the entries and CollectOrphans the files.
func TestGCHonoursInlineRetired(t *testing.T) {
	store := objstore.NewMemory()
	ctx := context.Background()
	const pch = "inline"
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	f := newFlusher(t, store, pch, nil)
	acks := flushedRounds(t, store, w, f, 4, 2, "va")
	// As an older compactor left it: the first two files out of the
	// manifest and into Retired, an hour ahead.
	obj, err := store.Get(ctx, testLayout.Checkpoint(pch))
	if err != nil {
		t.Fatal(err)
	}
	var cp sl.Checkpoint
	if err := json.Unmarshal(obj.Body, &cp); err != nil {
		t.Fatal(err)
	}
	old := cp.Segments[:2]
	at := time.Now().Add(time.Hour).UTC()
	for _, ref := range old {
		cp.Retired = append(cp.Retired, sl.RetiredSegment{Key: ref.Key, RetiredAt: at})
	}
	cp.Segments, cp.Version = slices.Clone(cp.Segments[2:]), cp.Version+1
	body, err := json.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutIfMatch(ctx, testLayout.Checkpoint(pch), body, obj.ETag); err != nil {
		t.Fatal(err)
	}
	acks = append(acks, flushedRounds(t, store, w, f, 1, 2, "va")...)
	compactAll(t, newCompactor(t, store, pch, func(c *snapshot.CompactConfig) { c.MinFiles = 2 }))
	if now, _ := checkpointSize(t, store, pch); len(now.Retired) != len(old) {
		t.Fatalf("after a flush and a compaction the record has %d inline entries, want %d", len(now.Retired), len(old))
	}
	// Inside the grace (the files 90 min old by GC's clock): kept.
	if err := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(90 * time.Minute) }).Collect(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ref := range old {
		if _, err := store.Head(ctx, ref.Key); err != nil {
			t.Errorf("inline retired %s deleted inside its grace: %v", ref.Key, err)
		}
	}
	// Past it: the entries go, then the files.
	if err := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(2*time.Hour + time.Minute) }).Collect(ctx); err != nil {
		t.Fatal(err)
	}
	final, _ := checkpointSize(t, store, pch)
	if len(final.Retired) != 0 {
		t.Errorf("%d inline entries left past their grace", len(final.Retired))
	}
	for _, ref := range old {
		if _, err := store.Head(ctx, ref.Key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("inline retired %s still there past its grace: %v", ref.Key, err)
		}
	}
	checkManifestFiles(t, store, final)
	// The retired files held the first messages; the rest is all there.
	got := scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil)
	if len(got) == 0 || got[len(got)-1].ID != acks[len(acks)-1].ID {
		t.Errorf("read %d messages after GC, the last acked %v missing", len(got), acks[len(acks)-1].ID)
	}
}

// TestFlushLostReplyAfterCompaction: a flush round's CAS lands but its
// reply is lost; before the flusher reads the record back, another flusher
// commits a round and a compaction merges the first round's files away.
// The record then names neither its flush ID nor its files: the flusher
// finds them in the merge's retired list and reports its round committed,
// not a lost race.
func TestFlushLostReplyAfterCompaction(t *testing.T) {
	store := objstore.NewMemory()
	ctx := context.Background()
	const pch = "lostmerged"
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	acks := flushedRounds(t, store, w, newFlusher(t, store, pch, nil), 3, 2, "va", "vb")
	acks = append(acks, appendN(t, w, "mine", 0, 2, "va", "vb")...)
	merges := 0
	hooked := testkit.LoseFirstReply(store, func(key string) bool { return key == testLayout.Checkpoint(pch) }, func() {
		acks = append(acks, appendN(t, w, "other", 0, 2, "va", "vb")...)
		if _, err := newFlusher(t, store, pch, nil).FlushNow(ctx); err != nil {
			t.Error(err)
		}
		merges = compactAll(t, newCompactor(t, store, pch, nil))
	})
	rounds, err := newFlusher(t, hooked, pch, nil).FlushNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if merges == 0 {
		t.Fatal("nothing was compacted under the lost reply: the test proves nothing")
	}
	cp, _ := checkpointSize(t, store, pch)
	for _, ref := range cp.Segments {
		if len(rounds) == 1 && strings.Contains(ref.Key, rounds[0].FlushID) {
			t.Fatalf("the round's file %s is still in the manifest: the test proves nothing", ref.Key)
		}
	}
	if len(rounds) != 1 || len(rounds[0].Segments) != 2 {
		t.Fatalf("flush rounds %+v: want the one round whose reply was lost, reported committed", rounds)
	}
	found := 0
	for _, ret := range retiredFiles(t, store, pch) {
		if strings.Contains(ret.Key, rounds[0].FlushID) {
			found++
		}
	}
	if found == 0 {
		t.Errorf("no retired list names a file of round %s", rounds[0].FlushID)
	}
	checkManifestFiles(t, store, cp)
	checkNoGapNoDup(t, scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil), acks)
}
