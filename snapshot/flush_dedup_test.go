package snapshot_test

import (
	"context"
	"encoding/json"
	"fmt"
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

// metaReads counts the GETs of records and dedup state objects (not WAL
// slots, not segments), conditional ones included, and the bytes they
// returned.
type metaReads struct {
	mu                    sync.Mutex
	checkpointGets, bytes int64
	stateGets             int64
}

func (m *metaReads) observe(r objstore.Request) {
	if r.Op != objstore.OpGet && r.Op != objstore.OpGetIfNoneMatch {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case strings.Contains(r.Key, "/meta/checkpoints/"):
		m.checkpointGets++
		m.bytes += r.Bytes
	case strings.Contains(r.Key, "/meta/dedup/"):
		m.stateGets++
		m.bytes += r.Bytes
	}
}

func (m *metaReads) take() (checkpointGets, stateGets, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	checkpointGets, stateGets, bytes = m.checkpointGets, m.stateGets, m.bytes
	m.checkpointGets, m.stateGets, m.bytes = 0, 0, 0
	return
}

// TestKeyedFlushKeepsReadsCheap is issue #16's reproduction: 100,000 keyed
// lines produced (as `cairn produce` sends them, one producer counting up,
// many per request), flushed, consumed. The checkpoint used to carry every
// key of the dedup window (13 MB of JSON, decoded by every read and every
// flusher look); now the window is a dedup state object only a takeover
// reads. A consume after the flush reads no more record bytes than a few
// KiB, the flusher's looks never read the state, and the state object is
// about 10 bytes a batch.
func TestKeyedFlushKeepsReadsCheap(t *testing.T) {
	ctx := context.Background()
	const pch, lines, perRequest = "p0", 100_000, 1000
	reads := &metaReads{}
	store := objstore.Observe(objstore.NewMemory(), reads.observe)
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	for r := range lines / perRequest {
		msgs := make([]sl.Message, perRequest)
		for i := range msgs {
			seq := uint64(r*perRequest + i)
			msgs[i] = sl.Message{Type: sl.TypeData, VChannel: "big", Payload: fmt.Appendf(nil, "line %d of the file", seq),
				Key: sl.IdemKey{Producer: "cli-produce", Epoch: 1, Seq: seq}}
		}
		if _, err := w.Append(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	reads.take()
	if got := len(scanAll(t, store, pch, sl.Earliest(), nil, nil)); got != lines {
		t.Fatalf("consume before the flush: %d lines", got)
	}
	cpBefore, stateBefore, bytesBefore := reads.take()

	f := newFlusher(t, store, pch, nil)
	if _, err := f.FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
	if err != nil {
		t.Fatal(err)
	}
	record, err := json.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	state, err := store.Get(ctx, cp.DedupState)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := sl.DecodeDedupState(state.Body)
	if err != nil || len(keys) != lines {
		t.Fatalf("dedup state: %d keys, %v; want all %d", len(keys), err, lines)
	}
	inline, _ := json.Marshal(keys)
	t.Logf("checkpoint %d bytes; dedup state %d bytes for %d keys in %d batches (inline JSON, as format 1 carried it: %d bytes)",
		len(record), len(state.Body), lines, lines/perRequest, len(inline))
	if len(record) > 4<<10 {
		t.Errorf("checkpoint record is %d bytes, want ≤ 4 KiB whatever the keys", len(record))
	}
	if len(state.Body) > 16*(lines/perRequest)+64 {
		t.Errorf("dedup state is %d bytes for %d batches, want ≤ 16 a batch", len(state.Body), lines/perRequest)
	}

	reads.take()
	segs := snapshot.NewSegmentReader(store, 0)
	if got := len(scanAll(t, store, pch, sl.Earliest(), segs, nil)); got != lines {
		t.Fatalf("consume after the flush: %d lines", got)
	}
	cpAfter, stateAfter, bytesAfter := reads.take()
	t.Logf("record reads of one consume: before the flush %d checkpoint GETs, %d bytes; after %d GETs, %d bytes",
		cpBefore, bytesBefore, cpAfter, bytesAfter)
	if stateBefore+stateAfter != 0 {
		t.Errorf("a consume read the dedup state %d times; only a takeover may", stateBefore+stateAfter)
	}
	if bytesAfter > int64(cpAfter)*4<<10 || cpAfter > cpBefore+2 {
		t.Errorf("consume after the flush: %d checkpoint GETs of %d bytes (before: %d GETs), want as few and ≤ 4 KiB each", cpAfter, bytesAfter, cpBefore)
	}

	// The flusher's looks at an idle pchannel read the checkpoint, never
	// the state, and download the record once: the first look finds the
	// version the flush wrote, the others learn it did not change (a
	// conditional GET, no body).
	stored, err := store.Head(ctx, testLayout.Checkpoint(pch))
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if rounds, err := f.FlushNow(ctx); err != nil || len(rounds) != 0 {
			t.Fatalf("idle flush: %d rounds, %v", len(rounds), err)
		}
	}
	if cpGets, stateGets, bytes := reads.take(); stateGets != 0 || cpGets != 10 || bytes != stored.Size {
		t.Errorf("10 idle flusher looks: %d checkpoint GETs, %d state GETs, %d bytes; want 10 GETs, no state read, the %d-byte record once",
			cpGets, stateGets, bytes, stored.Size)
	}
}

// TestFlusherIdleWithTailSendsNothing: with an in-process tail (the writer's
// ack frontier), Run's looks at an idle pchannel send no request; an append
// wakes them and is flushed.
func TestFlusherIdleWithTailSendsNothing(t *testing.T) {
	ctx := context.Background()
	const pch = "p1"
	base := objstore.NewMemory()
	var requests, looks atomic.Int64
	w := openWriter(t, base, pch, nil)
	defer w.Close(ctx)
	f := newFlusher(t, objstore.Observe(base, func(objstore.Request) { requests.Add(1) }), pch, func(c *snapshot.FlushConfig) {
		c.Interval, c.MinBytes = 2*time.Millisecond, 1
		c.Tail = func() (uint64, bool) {
			looks.Add(1)
			return w.Stats().Frontier, true
		}
	})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go f.Run(runCtx)
	flushedTo := func(c uint64) {
		t.Helper()
		testkit.EventuallyNil(t, 20*time.Second, fmt.Sprintf("flushed to %d", c), func() error {
			cp, _, err := sl.ReadCheckpoint(ctx, base, testLayout, pch)
			if err != nil {
				t.Fatal(err)
			}
			if cp.C < c {
				return fmt.Errorf("checkpoint %d", cp.C)
			}
			return nil
		})
	}
	appendN(t, w, "prod", 0, 3, "v")
	flushedTo(w.Stats().Frontier)
	// Let a look settle on the new checkpoint, then count 50 idle looks.
	waitLooks := func(n int64) {
		t.Helper()
		target := looks.Load() + n
		testkit.Eventually(t, 20*time.Second, fmt.Sprintf("%d looks", n), func() bool { return looks.Load() >= target })
	}
	waitLooks(5)
	before := requests.Load()
	waitLooks(50)
	if n := requests.Load() - before; n != 0 {
		t.Errorf("50 idle looks sent %d store requests, want none", n)
	}
	appendN(t, w, "prod", 3, 2, "v")
	flushedTo(w.Stats().Frontier)
}
