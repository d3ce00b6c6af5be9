package segmentlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// roundTripStore counts sequential round trips: the periods in which at
// least one request is in flight, so requests that overlap count once (as
// `cairn bench` counts a takeover's).
type roundTripStore struct {
	objstore.Store
	mu       sync.Mutex
	inflight int
	trips    int
}

func (s *roundTripStore) begin() func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == 0 {
		s.trips++
	}
	s.inflight++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.inflight--
	}
}

func (s *roundTripStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.trips
}

func (s *roundTripStore) Get(ctx context.Context, key string) (objstore.Object, error) {
	defer s.begin()()
	return s.Store.Get(ctx, key)
}

func (s *roundTripStore) GetIfNoneMatch(ctx context.Context, key, etag string) (objstore.Object, error) {
	defer s.begin()()
	return s.Store.GetIfNoneMatch(ctx, key, etag)
}

func (s *roundTripStore) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	defer s.begin()()
	return s.Store.PutIfAbsent(ctx, key, body, meta)
}

func (s *roundTripStore) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	defer s.begin()()
	return s.Store.PutIfMatch(ctx, key, body, etag)
}

// TestTakeoverRoundTrips pins the cost of a takeover at the tail (issue
// #9's target: ≤ 5 sequential store round trips from OpenWriter to the
// first ack): the checkpoint read overlaps the lease read, and the fence
// rule's checkpoint re-read overlaps the window's PUTs. What is left: read
// the lease and the checkpoint; CAS the lease; probe the first slot; claim
// the window and re-read the checkpoint; append.
func TestTakeoverRoundTrips(t *testing.T) {
	ctx := context.Background()
	base := objstore.NewMemory()
	w1 := openWriter(t, base, "p1", nil)
	for i := range 20 {
		if _, err := w1.Append(ctx, dataMsg("v", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Flushed, as a live pchannel's WAL is up to a few seconds behind its
	// tail: recovery starts at the tail.
	f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: "p1", Layout: testLayout, Logger: quietLog}, base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	// Every request takes 100 ms, so requests sent together overlap even
	// when a loaded machine starts their goroutines late.
	slow := objstore.NewFault(base, objstore.FaultConfig{Seed: 1, Latency: 100 * time.Millisecond})
	counting := &roundTripStore{Store: slow}
	// No renewal within the test: it would add a round trip of its own.
	w2 := openWriter(t, counting, "p1", func(c *sl.WriterConfig) { c.RenewInterval = time.Minute })
	defer w2.Close(ctx)
	if _, err := w2.Append(ctx, dataMsg("v", "first")); err != nil {
		t.Fatal(err)
	}
	if got := counting.count(); got > 5 {
		t.Fatalf("takeover took %d sequential round trips to the first ack, want ≤ 5", got)
	}
	if got := w2.Stats().FenceOffset; got != w1.Stats().Frontier {
		t.Fatalf("fence at %d, want the released tail %d", got, w1.Stats().Frontier)
	}
}

// TestTakeoverAnswersFlushedKeysAsDuplicates: keys acked and flushed before
// a failover live in the dedup state object the checkpoint names (not in
// the record); the next holder reads it alongside its replay, joins it with
// the keys the replay finds above the checkpoint, and answers retries with
// the first copies' IDs and ticks. Reading it costs no round trip of its
// own (≤ 5 in all, as TestTakeoverRoundTrips). A checkpoint of format 1,
// with the window inline, is read too.
func TestTakeoverAnswersFlushedKeysAsDuplicates(t *testing.T) {
	ctx := context.Background()
	keyed := func(i int) sl.Message {
		m := dataMsg("v", fmt.Sprint(i))
		m.Key = sl.IdemKey{Producer: "sdk", Epoch: 9, Seq: uint64(i)}
		return m
	}
	base := objstore.NewMemory()
	f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: "p1", Layout: testLayout, Logger: quietLog}, base)
	if err != nil {
		t.Fatal(err)
	}
	flush := func() {
		t.Helper()
		if _, err := f.FlushNow(ctx); err != nil {
			t.Fatal(err)
		}
	}
	first := make([]sl.Ack, 40)
	retry := func(w *sl.Writer, when string, keys ...int) {
		t.Helper()
		for _, i := range keys {
			acks, err := w.Append(ctx, keyed(i))
			if err != nil {
				t.Fatal(err)
			}
			if !acks[0].Duplicate || acks[0].ID != first[i].ID || acks[0].TimeTick != first[i].TimeTick {
				t.Errorf("%s: retry of key %d: %+v, want a duplicate of %+v", when, i, acks[0], first[i])
			}
		}
	}
	w1 := openWriter(t, base, "p1", nil)
	for i := range 40 {
		if i == 30 {
			flush() // 30 … 39 stay above the checkpoint, for the replay
		}
		acks, err := w1.Append(ctx, keyed(i))
		if err != nil {
			t.Fatal(err)
		}
		first[i] = acks[0]
	}
	if err := w1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cp, _, err := sl.ReadCheckpoint(ctx, base, testLayout, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if cp.Format != sl.CheckpointFormat || len(cp.Dedup) != 0 || cp.DedupState == "" {
		t.Fatalf("checkpoint format %d, %d keys inline, state %q: want the window in its own object", cp.Format, len(cp.Dedup), cp.DedupState)
	}
	w2 := openWriter(t, base, "p1", nil)
	retry(w2, "state and replay", 0, 17, 29, 30, 35, 39)
	if err := w2.Close(ctx); err != nil {
		t.Fatal(err)
	}

	flush() // recovery starts at the tail, as on a live pchannel
	slow := objstore.NewFault(base, objstore.FaultConfig{Seed: 1, Latency: 100 * time.Millisecond})
	counting := &roundTripStore{Store: slow}
	w3 := openWriter(t, counting, "p1", func(c *sl.WriterConfig) { c.RenewInterval = time.Minute })
	if _, err := w3.Append(ctx, dataMsg("v", "first")); err != nil {
		t.Fatal(err)
	}
	if got := counting.count(); got > 5 {
		t.Errorf("takeover with a dedup state object took %d sequential round trips to the first ack, want ≤ 5", got)
	}
	retry(w3, "state only", 3, 35)
	if err := w3.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Format 1: the same window inline in the record, as older flushers
	// wrote it.
	cp, _, err = sl.ReadCheckpoint(ctx, base, testLayout, "p1")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := base.Get(ctx, cp.DedupState)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Dedup, err = sl.DecodeDedupState(obj.Body); err != nil {
		t.Fatal(err)
	}
	cp.Format, cp.DedupState = sl.CheckpointFormatInlineDedup, ""
	old, err := json.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := base.Put(ctx, testLayout.Checkpoint("p1"), old); err != nil {
		t.Fatal(err)
	}
	w4 := openWriter(t, base, "p1", nil)
	defer w4.Close(ctx)
	retry(w4, "format 1", 5, 36)
}

// TestTakeoverWithDedupStateGone: a checkpoint that names a dedup state
// object no longer there (a newer flush deletes the one it replaced) makes
// recovery read the checkpoint again; if that still names it, the window is
// lost and the open fails with ErrDedupStateGone rather than forget keys.
func TestTakeoverWithDedupStateGone(t *testing.T) {
	ctx := context.Background()
	base := objstore.NewMemory()
	w1 := openWriter(t, base, "p1", nil)
	m := dataMsg("v", "x")
	m.Key = sl.IdemKey{Producer: "sdk", Epoch: 1, Seq: 1}
	if _, err := w1.Append(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := w1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: "p1", Layout: testLayout, Logger: quietLog}, base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	cp, _, err := sl.ReadCheckpoint(ctx, base, testLayout, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if err := base.Delete(ctx, cp.DedupState); err != nil {
		t.Fatal(err)
	}
	cfg := sl.WriterConfig{PChannel: "p1", Layout: testLayout, Holder: "test", Logger: quietLog, TimeTickInterval: -1}
	if w, err := sl.OpenWriter(ctx, cfg, base, newLeases(t, base)); !errors.Is(err, sl.ErrDedupStateGone) {
		if err == nil {
			w.Close(ctx)
		}
		t.Fatalf("open over a lost dedup state: %v, want ErrDedupStateGone", err)
	}
}
