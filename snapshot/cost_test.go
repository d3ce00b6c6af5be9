package snapshot_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// TestRequestCosts counts the store requests of each part of a pchannel's
// life, the figures of docs/operations.md's cost model: 64 full batches
// (900 keyed 1000-byte messages over 16 vchannels each) appended, flushed in
// one round, collected by GC, then a takeover at the tail and its first
// append. It checks the counts that the model multiplies out: one PUT per
// batch, one GET per batch to flush it and one DELETE to collect it, one
// segment PUT per vchannel, one checkpoint CAS and one dedup state object
// per round, and a takeover of a handful of requests.
func TestRequestCosts(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	counts := map[string]int64{}
	bytes := map[string]int64{}
	phase := "append"
	base := objstore.NewMemory()
	store := objstore.Observe(base, func(r objstore.Request) {
		mu.Lock()
		defer mu.Unlock()
		k := phase + " " + r.Op.String()
		if strings.Contains(r.Key, "/meta/") {
			k += " meta/" + strings.Split(strings.SplitN(r.Key, "/meta/", 2)[1], "/")[0]
		} else if strings.Contains(r.Key, "/wal/") {
			k += " wal"
		} else if strings.Contains(r.Key, "/segments/") {
			k += " segments"
		}
		counts[k]++
		bytes[k] += r.Bytes
	})
	w := openWriter(t, store, "p0", nil)
	payload := make([]byte, 1000)
	const perBatch, batches = 900, 64
	var seq uint64
	for b := range batches {
		msgs := make([]sl.Message, perBatch)
		for i := range msgs {
			msgs[i] = sl.Message{Type: sl.TypeData, VChannel: fmt.Sprintf("v%d", i%16), Payload: payload, Key: sl.IdemKey{Producer: "prod", Epoch: 1, Seq: seq}}
			seq++
		}
		if _, err := w.Append(ctx, msgs...); err != nil {
			t.Fatal(b, err)
		}
	}
	st := w.Stats()
	t.Logf("appended %d MB in %d batches, mean batch %d bytes", st.BytesAcked>>20, st.BatchesAcked, st.BytesAcked/st.BatchesAcked)
	mu.Lock()
	phase = "flush"
	mu.Unlock()
	f := newFlusher(t, store, "p0", nil)
	if _, err := f.FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	phase = "gc"
	mu.Unlock()
	g := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = func() time.Time { return time.Now().Add(3 * time.Hour) } })
	if err := g.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close(ctx)
	mu.Lock()
	phase = "takeover"
	mu.Unlock()
	w2 := openWriter(t, store, "p0", func(c *sl.WriterConfig) { c.RenewInterval = time.Minute }) // no renewal in the count
	if _, err := w2.Append(ctx, sl.Message{Type: sl.TypeData, VChannel: "v0", Payload: payload}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	phase = "end"
	mu.Unlock()
	w2.Close(ctx)
	mu.Lock()
	defer mu.Unlock()
	for k, want := range map[string]int64{
		"append put-if-absent wal":             batches + sl.FenceWindow,
		"flush put-if-absent segments":         16,
		"flush put-if-absent meta/checkpoints": 1,
		"flush put-if-absent meta/dedup":       1,
		"gc delete wal":                        batches,
		"takeover get meta/dedup":              1,
		"takeover put-if-absent wal":           sl.FenceWindow + 1,
		"takeover put-if-match meta/leases":    1,
	} {
		if counts[k] != want {
			t.Errorf("%s: %d requests, want %d", k, counts[k], want)
		}
	}
	if got := counts["flush get wal"]; got < batches+sl.FenceWindow || got > batches+sl.FenceWindow+32 {
		t.Errorf("flush read %d WAL slots, want the %d written and at most a read-ahead (32) of probes past the tail", got, batches+sl.FenceWindow)
	}
	takeover := int64(0)
	for k, n := range counts {
		if strings.HasPrefix(k, "takeover ") {
			takeover += n
		}
	}
	if takeover > 16 {
		t.Errorf("a takeover at the tail and its first append took %d requests, want ≤ 16", takeover)
	}
	var keys []string
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-40s %6d requests %12d bytes", k, counts[k], bytes[k])
	}
}
