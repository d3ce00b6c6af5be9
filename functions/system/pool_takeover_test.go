package system

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// TestPoolHoldNeverTakesOver: a balancing move reaches the new node as
// Pool.TakeOver, which takes the live lease from the old node; the old
// node's writer is fenced at its next append. The old node's watchdog Hold,
// polling a view that still assigns it the pchannel, then reopens with a
// plain acquire and fails with a *coordinator.HeldError: only TakeOver
// takes a live lease, so two nodes that disagree about an assignment never
// take it from each other in turn (docs/protocol.md, "Broadcast and
// coordinator" rule 5; a failure is an I11 liveness violation).
func TestPoolHoldNeverTakesOver(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	open := func(holder string) *Pool {
		sys, err := New(Config{Logger: slog.New(slog.DiscardHandler), TimeTickInterval: -1, Holder: holder, LeaseWait: 50 * time.Millisecond}, store)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sys.Close(ctx) })
		return sys.Pool()
	}
	a, b := open("node-a"), open("node-b")
	msg := []segmentlog.Message{{Type: segmentlog.TypeData, VChannel: "v", Payload: []byte("m")}}

	if err := a.Hold(ctx, "p0"); err != nil {
		t.Fatal(err)
	}
	termA, _, err := a.Append(ctx, "p0", msg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The move: node-b takes the live lease over.
	if err := b.TakeOver(ctx, "p0"); err != nil {
		t.Fatalf("take over node-a's live lease: %v", err)
	}
	termB, _, err := b.Append(ctx, "p0", msg, nil, nil)
	if err != nil || termB <= termA {
		t.Fatalf("node-b's append after the takeover: term %d, %v; want a term above node-a's %d", termB, err, termA)
	}
	// node-a's writer meets the fence...
	if _, _, err := a.Append(ctx, "p0", msg, nil, nil); err == nil {
		t.Fatal("node-a appended after node-b took its lease over")
	}
	// ...and its watchdog, still seeing p0 assigned to it, acquires: held.
	err = a.Hold(ctx, "p0")
	var held *coordinator.HeldError
	if !errors.As(err, &held) || held.Holder != "node-b" {
		t.Fatalf("I11: node-a's watchdog Hold after the move: %v; want a *coordinator.HeldError naming node-b (a watchdog that takes the lease back stops the node the move chose)", err)
	}
	l, err := coordinator.NewLeases(store, segmentlog.Layout{}, coordinator.LeaseConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := l.Describe(ctx, "p0")
	if err != nil || rec.Holder != "node-b" || rec.Term != termB {
		t.Fatalf("I11: lease after node-a's watchdog: %+v, %v; want node-b's term %d", rec, err, termB)
	}
	if _, _, err := b.Append(ctx, "p0", msg, nil, nil); err != nil {
		t.Fatalf("node-b's append after node-a's watchdog: %v", err)
	}
}
