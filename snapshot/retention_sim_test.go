package snapshot_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// simStore stamps every object with the simulated time of its last write
// and reports it as LastModified, so that GC and retention, which judge
// ages by LastModified, run on the simulated clock.
type simStore struct {
	objstore.Store
	mu   sync.Mutex
	now  time.Time
	born map[string]time.Time
}

func (s *simStore) stamp(key string) {
	s.mu.Lock()
	s.born[key] = s.now
	s.mu.Unlock()
}

func (s *simStore) at(a objstore.Attrs) objstore.Attrs {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.born[a.Key]; ok {
		a.LastModified = t
	}
	return a
}

func (s *simStore) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

func (s *simStore) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	etag, err := s.Store.PutIfAbsent(ctx, key, body, meta)
	if err == nil {
		s.stamp(key)
	}
	return etag, err
}

func (s *simStore) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	e, err := s.Store.PutIfMatch(ctx, key, body, etag)
	if err == nil {
		s.stamp(key)
	}
	return e, err
}

func (s *simStore) Put(ctx context.Context, key string, body []byte) (string, error) {
	e, err := s.Store.Put(ctx, key, body)
	if err == nil {
		s.stamp(key)
	}
	return e, err
}

func (s *simStore) Head(ctx context.Context, key string) (objstore.Attrs, error) {
	a, err := s.Store.Head(ctx, key)
	return s.at(a), err
}

func (s *simStore) List(ctx context.Context, prefix, startAfter string, fn func(objstore.Attrs) error) error {
	return s.Store.List(ctx, prefix, startAfter, func(a objstore.Attrs) error { return fn(s.at(a)) })
}

// countingStore counts the requests made through it.
type countingStore struct {
	objstore.Store
	n atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key string) (objstore.Object, error) {
	c.n.Add(1)
	return c.Store.Get(ctx, key)
}

func (c *countingStore) GetIfNoneMatch(ctx context.Context, key, etag string) (objstore.Object, error) {
	c.n.Add(1)
	return c.Store.GetIfNoneMatch(ctx, key, etag)
}

func (c *countingStore) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	c.n.Add(1)
	return c.Store.PutIfAbsent(ctx, key, body, meta)
}

func (c *countingStore) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	c.n.Add(1)
	return c.Store.PutIfMatch(ctx, key, body, etag)
}

func (c *countingStore) List(ctx context.Context, prefix, startAfter string, fn func(objstore.Attrs) error) error {
	c.n.Add(1) // one page: these listings are small
	return c.Store.List(ctx, prefix, startAfter, fn)
}

// TestRetentionSimulatedDay: a simulated day of steady appends (5 KiB a
// minute) under a 1 h age retention, with a flush every 10 minutes and
// retention then GC every 5: after the first hours, the manifest holds
// about one hour of data plus one flush and one GC interval, the bucket
// that plus the hour of retirement grace, and retention costs a few
// requests per round.
func TestRetentionSimulatedDay(t *testing.T) {
	ctx := context.Background()
	const pch = "day"
	sim := &simStore{Store: objstore.NewMemory(), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), born: map[string]time.Time{}}
	w := openWriter(t, sim, pch, nil)
	defer w.Close(ctx)
	flusher := newFlusher(t, sim, pch, func(c *snapshot.FlushConfig) { c.Now = sim.clock })
	gc := newGC(t, sim, func(c *snapshot.GCConfig) { c.Now = sim.clock })
	counted := &countingStore{Store: sim}
	ret := snapshot.NewRetention(snapshot.RetentionConfig{Layout: testLayout, Logger: quietLog, Now: sim.clock}, counted)
	if _, err := snapshot.SetPolicy(ctx, sim, testLayout, snapshot.PolicyPChannel, pch, pch, snapshot.Policy{MaxAge: time.Hour}, sim.clock()); err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{7})
	const perMinute = 5
	var maxHeld, maxBucket, written int64
	for minute := 1; minute <= 24*60; minute++ {
		sim.mu.Lock()
		sim.now = sim.now.Add(time.Minute)
		sim.mu.Unlock()
		msgs := make([]sl.Message, perMinute)
		for i := range msgs {
			payload := make([]byte, 1024) // random: segment files compress
			rng.Read(payload)
			msgs[i] = sl.Message{Type: sl.TypeData, VChannel: "v0", Payload: payload}
		}
		if _, err := w.Append(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		written += perMinute * 1024
		if minute%10 == 0 {
			if _, err := flusher.FlushNow(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if minute%5 == 0 {
			if _, err := ret.Apply(ctx); err != nil {
				t.Fatal(err)
			}
			if err := gc.Collect(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if minute%60 == 0 && minute >= 3*60 {
			cp, _, err := sl.ReadCheckpoint(ctx, sim, testLayout, pch)
			if err != nil {
				t.Fatal(err)
			}
			maxHeld = max(maxHeld, snapshot.HeldBy(cp, "", sl.MessageID{}).Bytes)
			var bucket int64
			if err := sim.List(ctx, testLayout.Prefix+"/", "", func(a objstore.Attrs) error {
				if strings.HasSuffix(a.Key, ".arrow") || strings.Contains(a.Key, "/wal/") {
					bucket += a.Size
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			maxBucket = max(maxBucket, bucket)
		}
	}
	perHour := written / 24
	// One hour, one flush and one GC interval of payload, with 25% for
	// the Arrow and WAL framing.
	bound := perHour * (60 + 10 + 5) / 60 * 5 / 4
	if maxHeld > bound || maxHeld < perHour/2 {
		t.Errorf("segment bytes held under a 1 h retention: at most %d, want between %d and %d (%d B of payload an hour)", maxHeld, perHour/2, bound, perHour)
	}
	// The bucket adds the retirement grace (1 h) and the WAL kept min_age (1 h).
	if maxBucket > 3*bound {
		t.Errorf("bucket bytes: at most %d, want at most %d", maxBucket, 3*bound)
	}
	t.Logf("simulated day, %d B of payload an hour, 1 h age retention: manifest held at most %d B (%.2f h of payload), bucket at most %d B (%.2f h); retention made %d store requests (%.0f an hour, %d rounds an hour)",
		perHour, maxHeld, float64(maxHeld)/float64(perHour), maxBucket, float64(maxBucket)/float64(perHour), counted.n.Load(), float64(counted.n.Load())/24, 12)
}
