package segmentlog_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// storeTally counts the requests and body bytes of an observed store.
type storeTally struct {
	mu       sync.Mutex
	requests int
	bytes    int64
	ops      []objstore.Op
}

func (c *storeTally) observe(r objstore.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	c.bytes += r.Bytes
	c.ops = append(c.ops, r.Op)
}

func (c *storeTally) take() (requests int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	requests, bytes = c.requests, c.bytes
	c.requests, c.bytes, c.ops = 0, 0, nil
	return requests, bytes
}

// putCheckpoint stores cp as p's checkpoint record, as a flush writes it.
func putCheckpoint(t *testing.T, store objstore.Store, cp sl.Checkpoint) string {
	t.Helper()
	b, err := json.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	etag, err := store.Put(t.Context(), testLayout.Checkpoint(cp.PChannel), b)
	if err != nil {
		t.Fatal(err)
	}
	return etag
}

// bigCheckpoint is a record with a manifest of n segments: a few KB, the
// size of a busy pchannel's record.
func bigCheckpoint(p string, version uint64, n int) sl.Checkpoint {
	cp := sl.Checkpoint{Format: sl.CheckpointFormat, PChannel: p, C: 100 * version, MaxTerm: 3, Version: version}
	for i := range n {
		cp.Segments = append(cp.Segments, sl.SegmentRef{VChannel: "v0", Key: fmt.Sprintf("segments/%s/v0/%08d.arrow", p, i),
			FirstOffset: uint64(i), LastOffset: uint64(i), Messages: 1, Bytes: 1000})
	}
	return cp
}

// TestCheckpointCacheRereadsOnlyAChange: reading an unchanged record again
// is one request that carries no body; a changed record, a deleted one and
// a caller that edits what it got are all read as ReadCheckpoint reads
// them. With a plain Get in place of the conditional read, the second
// read would carry the record's bytes again.
func TestCheckpointCacheRereadsOnlyAChange(t *testing.T) {
	ctx := t.Context()
	mem := objstore.NewMemory()
	var tally storeTally
	cache := sl.NewCheckpointCache(objstore.Observe(mem, tally.observe), testLayout)

	cp, etag, err := cache.Read(ctx, "p1")
	if err != nil || etag != "" || cp.C != 0 || cp.PChannel != "p1" {
		t.Fatalf("read of a missing record = C %d, ETag %q, err %v; want the zero checkpoint", cp.C, etag, err)
	}
	e1 := putCheckpoint(t, mem, bigCheckpoint("p1", 1, 50))
	size, _ := mem.Head(ctx, testLayout.Checkpoint("p1"))
	tally.take()

	cp, etag, err = cache.Read(ctx, "p1")
	if err != nil || etag != e1 || cp.Version != 1 || len(cp.Segments) != 50 {
		t.Fatalf("first read = version %d, %d segments, ETag %q, err %v; want version 1, 50 segments, %q", cp.Version, len(cp.Segments), etag, err, e1)
	}
	if n, b := tally.take(); n != 1 || b != size.Size {
		t.Fatalf("first read: %d requests, %d bytes; want 1 request of the record's %d bytes", n, b, size.Size)
	}
	cp.Segments[0].Key = "edited by the caller"
	cp.Segments = append(cp.Segments[:0], cp.Segments[1:]...)

	for range 10 {
		again, etag, err := cache.Read(ctx, "p1")
		if err != nil || etag != e1 || again.Version != 1 || len(again.Segments) != 50 || again.Segments[0].Key != "segments/p1/v0/00000000.arrow" {
			t.Fatalf("read of the unchanged record = version %d, %d segments (first %q), ETag %q, err %v; want the record as stored",
				again.Version, len(again.Segments), again.Segments[0].Key, etag, err)
		}
	}
	if n, b := tally.take(); n != 10 || b != 0 {
		t.Fatalf("10 reads of an unchanged %d-byte record: %d requests, %d bytes; want 10 requests and no body", size.Size, n, b)
	}

	e2 := putCheckpoint(t, mem, bigCheckpoint("p1", 2, 51))
	tally.take()
	if cp, etag, err := cache.Read(ctx, "p1"); err != nil || etag != e2 || cp.Version != 2 || len(cp.Segments) != 51 {
		t.Fatalf("read after a change = version %d, ETag %q, err %v; want version 2, %q", cp.Version, etag, err, e2)
	}
	if n, b := tally.take(); n != 1 || b == 0 {
		t.Fatalf("read of a changed record: %d requests, %d bytes; want 1 request with the new record", n, b)
	}

	if err := mem.Delete(ctx, testLayout.Checkpoint("p1")); err != nil {
		t.Fatal(err)
	}
	if cp, etag, err := cache.Read(ctx, "p1"); err != nil || etag != "" || cp.Version != 0 || len(cp.Segments) != 0 {
		t.Fatalf("read after a delete = version %d, ETag %q, err %v; want the zero checkpoint", cp.Version, etag, err)
	}
}

// TestCheckpointCacheCorrupt: a damaged record fails as ReadCheckpoint's
// does, and a kept version never stands in for it.
func TestCheckpointCacheCorrupt(t *testing.T) {
	ctx := t.Context()
	mem := objstore.NewMemory()
	cache := sl.NewCheckpointCache(mem, testLayout)
	putCheckpoint(t, mem, bigCheckpoint("p1", 1, 1))
	if _, _, err := cache.Read(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Put(ctx, testLayout.Checkpoint("p1"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := cache.Read(ctx, "p1"); !errors.Is(err, sl.ErrCorrupt) {
			t.Fatalf("read of a damaged record: err = %v, want ErrCorrupt", err)
		}
	}
}

// TestScannersShareCheckpointReads: scanners given one CheckpointCache (a
// node's consume requests) download an unchanged checkpoint once between
// them; each still asks the store whenever the reading rule needs the
// record.
func TestScannersShareCheckpointReads(t *testing.T) {
	ctx := t.Context()
	mem := objstore.NewMemory()
	w := openWriter(t, mem, "p1", nil)
	defer w.Close(ctx)
	for i := range 5 {
		if _, err := w.Append(ctx, dataMsg("v1", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// A record with a long history of compaction's retired files: bytes
	// every read of it would carry.
	cp := sl.Checkpoint{Format: sl.CheckpointFormat, PChannel: "p1", Version: 1}
	for i := range 40 {
		cp.Retired = append(cp.Retired, sl.RetiredSegment{Key: fmt.Sprintf("segments/p1/v1/%08d.arrow", i)})
	}
	putCheckpoint(t, mem, cp)
	size, err := mem.Head(ctx, testLayout.Checkpoint("p1"))
	if err != nil {
		t.Fatal(err)
	}
	var tally storeTally
	counted := objstore.Observe(mem, func(r objstore.Request) {
		if r.Key == testLayout.Checkpoint("p1") {
			tally.observe(r)
		}
	})
	cache := sl.NewCheckpointCache(counted, testLayout)
	for i := range 5 {
		got := scanFiltered(t, counted, "p1", sl.ScannerConfig{From: sl.Earliest(), Checkpoints: cache})
		if len(got) != 5 {
			t.Fatalf("scan %d: %d messages, want 5", i, len(got))
		}
	}
	// Each scan reads the record at its start and again at the tail.
	if n, b := tally.take(); n != 10 || b != size.Size {
		t.Fatalf("5 scans: %d checkpoint reads of %d bytes; want 10 reads and the %d-byte record once", n, b, size.Size)
	}
}
