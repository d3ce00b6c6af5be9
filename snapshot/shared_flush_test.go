package snapshot_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// A shared writer that joins a pchannel after a flush takes its
// idempotency window from the dedup state object the checkpoint names
// (format 2): a retry of a message flushed before it joined, and then
// collected from the WAL, is answered as a duplicate at the first copy's
// ID and tick, and nothing is written again.
func TestSharedWriterJoinsAfterAFlush(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	cfg := func(holder string) sl.WriterConfig {
		return sl.WriterConfig{PChannel: "p", Layout: testLayout, Holder: holder, Logger: quietLog,
			PutTimeout: time.Second, GetTimeout: time.Second, TimeTickInterval: -1}
	}
	a, err := sl.OpenSharedWriter(ctx, cfg("a"), store, newLeases(t, store, 4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	key := sl.IdemKey{Producer: "prod", Epoch: 3, Seq: 9}
	msg := sl.Message{Type: sl.TypeData, VChannel: "v", Key: key, Payload: []byte("once")}
	first, err := a.Append(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newFlusher(t, store, "p", nil).FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, "p")
	if err != nil || cp.C <= first[0].ID.Offset || cp.DedupState == "" || len(cp.Dedup) != 0 {
		t.Fatalf("checkpoint after the flush: c %d, dedup state %q, inline dedup %d (%v)", cp.C, cp.DedupState, len(cp.Dedup), err)
	}
	// The WAL below c is gone, as after GC: only the state object knows the key.
	for off := uint64(0); off < cp.C; off++ {
		if err := store.Delete(ctx, testLayout.WAL("p", off)); err != nil && !errors.Is(err, objstore.ErrNotFound) {
			t.Fatal(err)
		}
	}
	b, err := sl.OpenSharedWriter(ctx, cfg("b"), store, newLeases(t, store, 4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if b.Stats().Opened || b.Term() != a.Term() {
		t.Fatalf("b opened %v term %d; want it to adopt a's term %d", b.Stats().Opened, b.Term(), a.Term())
	}
	again, err := b.Append(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].Duplicate || again[0].ID != first[0].ID || again[0].TimeTick != first[0].TimeTick {
		t.Fatalf("I7: retry through a writer that joined after the flush: %+v, first copy %+v", again[0], first[0])
	}
	if s := b.Stats(); s.Batches != 0 {
		t.Fatalf("the duplicate was written again: %+v", s)
	}
}
