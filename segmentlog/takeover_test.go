package segmentlog_test

import (
	"context"
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
