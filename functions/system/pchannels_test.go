package system

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

func testSystem(t *testing.T, store objstore.Store, holder string) *System {
	t.Helper()
	sys, err := New(Config{Holder: holder, Logger: slog.New(slog.DiscardHandler), TimeTickInterval: -1}, store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.Close(context.Background()) })
	return sys
}

// apiRequests sums cairn_store_requests_total of component "api".
func apiRequests(t *testing.T, sys *System) float64 {
	t.Helper()
	mfs, err := sys.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "cairn_store_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "component" && l.GetValue() == "api" {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// TestTail: a pchannel never written has no tail (ErrNoLease); the
// writer's process answers from its frontier, another process probes the
// store, through the store counted as component "api", to the same offset.
func TestTail(t *testing.T) {
	ctx := t.Context()
	store := objstore.NewMemory()
	a := testSystem(t, store, "a")
	if _, err := a.Tail(ctx, "p0"); !errors.Is(err, coordinator.ErrNoLease) {
		t.Fatalf("tail of a pchannel never written: %v, want ErrNoLease", err)
	}
	_, acks, err := a.Pool().Append(ctx, "p0", []segmentlog.Message{{Type: segmentlog.TypeData, VChannel: "v", Payload: []byte("x")}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := acks[0].ID.Offset + 1
	if tl, err := a.Tail(ctx, "p0"); err != nil || tl.Source != "writer" || tl.NextOffset != want {
		t.Fatalf("tail in the writer's process: %+v, %v; want %d from the writer", tl, err, want)
	}
	b := testSystem(t, store, "b")
	if tl, err := b.Tail(ctx, "p0"); err != nil || tl.Source != "store" || tl.NextOffset != want {
		t.Fatalf("tail in another process: %+v, %v; want %d from the store", tl, err, want)
	}
	if n := apiRequests(t, b); n == 0 {
		t.Fatal("the store probe was not counted under component api")
	}
}

// TestReadVChannel: a vchannel's read keeps to it and starts at its create
// message; a position in a restored history of a vchannel that has none
// is ErrNoHistory; a vchannel whose pchannel was never written reads
// nothing but ErrNoLease.
func TestReadVChannel(t *testing.T) {
	ctx := t.Context()
	sys := testSystem(t, objstore.NewMemory(), "a")
	v, err := sys.CreateVChannel(ctx, "orders", "p1")
	if err != nil {
		t.Fatal(err)
	}
	msgs := []segmentlog.Message{{Type: segmentlog.TypeData, VChannel: "other", Payload: []byte("no")}, {Type: segmentlog.TypeData, VChannel: "orders", Payload: []byte("yes")}}
	if _, _, err := sys.Pool().Append(ctx, "p1", msgs, nil, nil); err != nil {
		t.Fatal(err)
	}
	lim := segmentlog.PageLimits{Max: 10, MaxBytes: 1 << 20}
	page, err := sys.ReadVChannel(ctx, v, segmentlog.Earliest(), nil, nil, lim)
	if err != nil || len(page.Messages) != 1 || string(page.Messages[0].Payload) != "yes" || page.Restored {
		t.Fatalf("read of orders: %+v, %v; want its one message", page, err)
	}
	if _, err := sys.ReadVChannel(ctx, v, segmentlog.Position{}, &segmentlog.MessageID{}, nil, lim); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("restored position of a vchannel never restored: %v, want ErrNoHistory", err)
	}
	unwritten := coordinator.VChannel{Name: "ghost", PChannel: "p3"}
	if _, err := sys.ReadVChannel(ctx, unwritten, segmentlog.Earliest(), nil, nil, lim); !errors.Is(err, coordinator.ErrNoLease) {
		t.Fatalf("read on a pchannel never written: %v, want ErrNoLease", err)
	}
}
