package snapshot_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// TestSegmentReaderReadsAheadOnlyPastHalf: a vchannel in four segment
// files reads whole and in order, each file fetched once (the next one
// loads while the second half of the current one is delivered); a reader
// that takes a few messages and closes — an HTTP page — fetches one file,
// not two.
func TestSegmentReaderReadsAheadOnlyPastHalf(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	const pch = "readahead"
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	f := newFlusher(t, store, pch, nil)
	var acks []sl.Ack
	for range 4 {
		acks = append(acks, appendN(t, w, "p", len(acks), 10, "va")...)
		if _, err := f.FlushNow(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
	if err != nil {
		t.Fatal(err)
	}
	var gets atomic.Int64
	counted := objstore.Observe(store, func(r objstore.Request) {
		if r.Op == objstore.OpGet && strings.Contains(r.Key, "/segments/") {
			gets.Add(1)
		}
	})
	r := snapshot.NewSegmentReader(counted, 0)

	page, err := r.Open(ctx, cp, sl.MessageID{}, []string{"va"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := page.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	page.Close()
	if n := gets.Load(); n != 1 {
		t.Fatalf("a page of 3 messages from the first of 4 files fetched %d files, want 1", n)
	}

	gets.Store(0)
	got := drain(t)(r.Open(ctx, cp, sl.MessageID{}, []string{"va"}))
	if len(got) != len(acks) {
		t.Fatalf("read %d messages, want %d", len(got), len(acks))
	}
	for i, a := range acks {
		if got[i].ID != a.ID {
			t.Fatalf("message %d at %v, want %v", i, got[i].ID, a.ID)
		}
	}
	if n := gets.Load(); n != 4 {
		t.Fatalf("a whole read of 4 files fetched %d, want each once", n)
	}
}
