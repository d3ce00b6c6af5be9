package snapshot_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// TestMain starts one real MinIO for the package (the harness fails, never
// skips, when it cannot).
func TestMain(m *testing.M) { os.Exit(miniotest.RunMain(m)) }

var (
	quietLog   = slog.New(slog.NewTextHandler(io.Discard, nil))
	testLayout = sl.Layout{Prefix: "unit"}
)

// stores runs f against memory and MinIO.
func stores(t *testing.T, f func(t *testing.T, store objstore.Store)) {
	t.Run("memory", func(t *testing.T) { f(t, objstore.NewMemory()) })
	t.Run("minio", func(t *testing.T) { f(t, testkit.MinIOStore(t, "snapshot")) })
}

func newLeases(tb testing.TB, store objstore.Store, ttl time.Duration) *coordinator.Leases {
	tb.Helper()
	l, err := coordinator.NewLeases(store, testLayout, coordinator.LeaseConfig{TTL: ttl, Margin: ttl / 4},
		coordinator.WithRequestTimeout(ttl/8))
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func openWriter(tb testing.TB, store objstore.Store, pch string, mod func(*sl.WriterConfig)) *sl.Writer {
	tb.Helper()
	cfg := sl.WriterConfig{PChannel: pch, Layout: testLayout, Holder: "test", Logger: quietLog,
		PutTimeout: time.Second, GetTimeout: time.Second, RenewInterval: 300 * time.Millisecond,
		TimeTickInterval: -1} // tests that count messages enable it themselves
	if mod != nil {
		mod(&cfg)
	}
	// A 4s lease (1s margin, 500ms requests): the tests share two cores
	// with every other package under -race, where MinIO round trips of
	// 300ms happen and a 2s lease lapsed.
	w, err := sl.OpenWriter(context.Background(), cfg, store, newLeases(tb, store, 4*time.Second))
	if err != nil {
		tb.Fatalf("open writer %s: %v", pch, err)
	}
	return w
}

func newFlusher(tb testing.TB, store objstore.Store, pch string, mod func(*snapshot.FlushConfig)) *snapshot.Flusher {
	tb.Helper()
	cfg := snapshot.FlushConfig{PChannel: pch, Layout: testLayout, Logger: quietLog, GetTimeout: time.Second, PutTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	f, err := snapshot.NewFlusher(cfg, store)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// appendN appends n keyed data messages spread over vchannels, one Append
// per message, and returns their acks in order.
func appendN(tb testing.TB, w *sl.Writer, producer string, from, n int, vchannels ...string) []sl.Ack {
	tb.Helper()
	var acks []sl.Ack
	for i := from; i < from+n; i++ {
		m := sl.Message{Type: sl.TypeData, VChannel: vchannels[i%len(vchannels)],
			Key: sl.IdemKey{Producer: producer, Epoch: 1, Seq: uint64(i + 1)}, Payload: fmt.Appendf(nil, "%s/%d", producer, i)}
		if i%3 == 0 {
			m.Properties = map[string]string{"i": fmt.Sprint(i), "kind": "test"}
		}
		a, err := w.Append(context.Background(), m)
		if err != nil {
			tb.Fatalf("append %d: %v", i, err)
		}
		acks = append(acks, a...)
	}
	return acks
}

// scanAll reads a pchannel from a position to the tail: segments below the
// checkpoint (when segs is set), then the WAL.
func scanAll(tb testing.TB, store objstore.Store, pch string, from sl.Position, segs sl.SegmentReader, mod func(*sl.ScannerConfig)) []sl.Delivery {
	tb.Helper()
	cfg := sl.ScannerConfig{PChannel: pch, Layout: testLayout, From: from, Segments: segs}
	if mod != nil {
		mod(&cfg)
	}
	return testkit.Scan(tb, context.Background(), store, cfg)
}

// sameDeliveries compares two streams message by message, every field.
func sameDeliveries(tb testing.TB, what string, got, want []sl.Delivery) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Errorf("%s: %d messages, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if d := diffDelivery(got[i], want[i]); d != "" {
			tb.Errorf("%s: message %d: %s", what, i, d)
			return
		}
	}
}

func diffDelivery(a, b sl.Delivery) string {
	switch {
	case a.ID != b.ID:
		return fmt.Sprintf("ID %v, want %v", a.ID, b.ID)
	case a.Term != b.Term:
		return fmt.Sprintf("%v: term %d, want %d", a.ID, a.Term, b.Term)
	case a.TimeTick != b.TimeTick || a.Type != b.Type || a.VChannel != b.VChannel || a.TxnID != b.TxnID || a.Key != b.Key || a.BroadcastID != b.BroadcastID:
		return fmt.Sprintf("%v: %+v, want %+v", a.ID, a.Message, b.Message)
	case string(a.Payload) != string(b.Payload):
		return fmt.Sprintf("%v: payload %q, want %q", a.ID, a.Payload, b.Payload)
	case len(a.Properties) != len(b.Properties):
		return fmt.Sprintf("%v: properties %v, want %v", a.ID, a.Properties, b.Properties)
	}
	for k, v := range b.Properties {
		if a.Properties[k] != v {
			return fmt.Sprintf("%v: properties %v, want %v", a.ID, a.Properties, b.Properties)
		}
	}
	return ""
}

// checkNoGapNoDup checks that got holds every acked ID exactly once, in
// order.
func checkNoGapNoDup(tb testing.TB, got []sl.Delivery, acks []sl.Ack) {
	tb.Helper()
	seen := make(map[sl.MessageID]int)
	for i, d := range got {
		if i > 0 && !got[i-1].ID.Less(d.ID) {
			tb.Errorf("ID %v after %v", d.ID, got[i-1].ID)
		}
		seen[d.ID]++
	}
	for _, a := range acks {
		switch n := seen[a.ID]; {
		case n == 0:
			tb.Errorf("acked %v never delivered", a.ID)
		case n > 1:
			tb.Errorf("acked %v delivered %d times", a.ID, n)
		}
	}
}
