package api

import (
	"fmt"
	"testing"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// TestMaintenanceRound: one round flushes every written pchannel, writes
// the assignment records, and reclaims a dropped vchannel no snapshot pins.
func TestMaintenanceRound(t *testing.T) {
	store := objstore.NewMemory()
	ts := newTestServer(t, testConfig(t), store)
	ts.createVChannel("v0", "p0")
	ts.createVChannel("gone", "p0")
	mustOK(t, "append", ts.postJSON("/v1/vchannels/v0/append", msgs("", "a", "b")), nil)
	mustOK(t, "drop", ts.do("DELETE", "/v1/vchannels/gone", "", nil), nil)

	m, err := system.New(testConfig(t).Config, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RunMaintenance(t.Context()); err != nil {
		t.Fatalf("maintenance round: %v", err)
	}
	cp, _, err := segmentlog.ReadCheckpoint(t.Context(), store, segmentlog.Layout{}, "p0")
	if err != nil || cp.C == 0 {
		t.Fatalf("checkpoint of p0 after the round: %+v, %v", cp, err)
	}
	v, err := ts.srv.sys.Registry().Describe(t.Context(), "gone")
	if err != nil || v.State != coordinator.VChannelReclaiming {
		t.Fatalf("dropped vchannel after the round: %+v, %v; want reclaiming", v, err)
	}
	var rr wire.ReadResponse
	mustOK(t, "read after the round", ts.get("/v1/vchannels/v0/messages"), &rr)
	if len(rr.Messages) != 2 {
		t.Fatalf("read %q after the round", payloads(rr.Messages))
	}
	if _, err := system.New(system.Config{PChannels: []string{"p0", "p0"}}, store); err == nil {
		t.Fatal("maintenance with a pchannel listed twice: no error")
	}
}

// TestMaintenanceCompacts: once a pchannel's manifest names many small
// segment files, a maintenance round merges them (the "compact" task), and
// every message still reads back once, in order.
func TestMaintenanceCompacts(t *testing.T) {
	store := objstore.NewMemory()
	ts := newTestServer(t, testConfig(t), store)
	ts.createVChannel("v0", "p0")
	f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: "p0", Logger: testLogger(t)}, store)
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 80 // one segment file each: above the 64-reference threshold
	for i := range rounds {
		mustOK(t, "append", ts.postJSON("/v1/vchannels/v0/append", msgs("", fmt.Sprint(i))), nil)
		if _, err := f.FlushNow(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	before, _, err := segmentlog.ReadCheckpoint(t.Context(), store, segmentlog.Layout{}, "p0")
	if err != nil || len(before.Segments) < rounds {
		t.Fatalf("manifest before the round: %d refs, %v", len(before.Segments), err)
	}
	m, err := system.New(testConfig(t).Config, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RunMaintenance(t.Context()); err != nil {
		t.Fatalf("maintenance round: %v", err)
	}
	after, _, err := segmentlog.ReadCheckpoint(t.Context(), store, segmentlog.Layout{}, "p0")
	retired, rerr := snapshot.RetiredFiles(t.Context(), store, segmentlog.Layout{}, "p0")
	if err != nil || rerr != nil || len(after.Segments) >= len(before.Segments)/2 || len(retired) == 0 {
		t.Fatalf("manifest after the round: %d refs (from %d), %d retired, %v, %v", len(after.Segments), len(before.Segments), len(retired), err, rerr)
	}
	// Off (a rolling upgrade): no "compact" task.
	off := testConfig(t)
	off.NoCompaction = true
	mOff, err := system.New(off.Config, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := mOff.RunMaintenance(t.Context()); err != nil {
		t.Fatalf("maintenance round without compaction: %v", err)
	}
	if n := storeRequests(t, mOff, "compactor"); n != 0 {
		t.Fatalf("maintenance with NoCompaction made %v compactor store requests", n)
	}
	if n := storeRequests(t, mOff, "flusher"); n == 0 {
		t.Fatal("maintenance with NoCompaction made no flusher store requests: the check above proves nothing")
	}
	var rr wire.ReadResponse
	mustOK(t, "read after the round", ts.get("/v1/vchannels/v0/messages?max=1000"), &rr)
	got := payloads(rr.Messages)
	if len(got) != rounds {
		t.Fatalf("read %d messages after compaction, want %d", len(got), rounds)
	}
	for i, p := range got {
		if p != fmt.Sprint(i) {
			t.Fatalf("message %d is %q after compaction", i, p)
		}
	}
}

// TestMaintenanceRetention: a maintenance round applies a pchannel's
// retention policy before GC: the flushed data beyond max_bytes is
// trimmed, and GC retires its files.
func TestMaintenanceRetention(t *testing.T) {
	store := objstore.NewMemory()
	ts := newTestServer(t, testConfig(t), store)
	ts.createVChannel("v0", "p0")
	f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: "p0", Logger: testLogger(t)}, store)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustOK(t, "append", ts.postJSON("/v1/vchannels/v0/append", msgs("", fmt.Sprint(i))), nil)
		if _, err := f.FlushNow(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	mustOK(t, "retention", ts.do("PUT", "/v1/pchannels/p0/retention", wire.ContentTypeJSON, []byte(`{"max_bytes":1}`)), nil)
	m, err := system.New(testConfig(t).Config, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RunMaintenance(t.Context()); err != nil {
		t.Fatalf("maintenance round: %v", err)
	}
	cp, _, err := segmentlog.ReadCheckpoint(t.Context(), store, segmentlog.Layout{}, "p0")
	retired, rerr := snapshot.RetiredFiles(t.Context(), store, segmentlog.Layout{}, "p0")
	if err != nil || rerr != nil || cp.Trim.Offset == 0 || len(cp.Segments) != 0 || len(retired) == 0 {
		t.Fatalf("after the round: trim %v, %d files, %d retired, %v, %v; want everything flushed trimmed and retired", cp.Trim, len(cp.Segments), len(retired), err, rerr)
	}
	var rr wire.ReadResponse
	mustOK(t, "read after the round", ts.get("/v1/vchannels/v0/messages"), &rr)
	if len(rr.Messages) != 0 {
		t.Fatalf("read %q after retention trimmed everything flushed", payloads(rr.Messages))
	}
}

// storeRequests is the store requests sys counted for component.
func storeRequests(t *testing.T, sys *system.System, component string) float64 {
	t.Helper()
	mfs, err := sys.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "cairn_store_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "component" && l.GetValue() == component {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
