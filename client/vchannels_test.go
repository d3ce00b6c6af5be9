package client

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func payloadsOf(ds []Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, string(d.Payload))
	}
	return out
}

// consumeAll reads co until it meets the tail.
func consumeAll(t *testing.T, co *Consumer) []Delivery {
	t.Helper()
	var out []Delivery
	for {
		ds, err := co.Poll(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			return out
		}
		out = append(out, ds...)
	}
}

// TestVChannelsSnapshotsRestore: the registry calls, producing and
// consuming by vchannel, a transaction, flush, a snapshot, and a restore
// whose target reads its history, then its own messages.
func TestVChannelsSnapshotsRestore(t *testing.T) {
	url := newServer(t, serverOptions{})
	c, err := New(url) // real pauses: WaitRestore polls
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	v, err := c.CreateVChannel(ctx, "orders", "p1")
	if err != nil || v.PChannel != "p1" || v.State != "active" || v.Created == nil {
		t.Fatalf("create: %+v, %v", v, err)
	}
	if _, err := c.CreateVChannel(ctx, "orders", "p2"); !errors.Is(err, ErrConflict) {
		t.Fatalf("create with another binding: %v, want ErrConflict", err)
	}
	if _, err := c.CreateVChannel(ctx, "x", "p9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("create on an unknown pchannel: %v, want ErrNotFound", err)
	}
	if vs, err := c.VChannels(ctx, VChannelFilter{PChannel: "p1"}); err != nil || len(vs) != 1 || vs[0].Name != "orders" {
		t.Fatalf("list: %+v, %v", vs, err)
	}
	if _, err := c.VChannel(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("describe unknown: %v", err)
	}
	if loc, err := c.Locate(ctx, "orders"); err != nil || loc.PChannel != "p1" || loc.Node == "" {
		t.Fatalf("locate: %+v, %v", loc, err)
	}

	p, err := c.VChannelProducer("orders", ProducerConfig{Name: "vp"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendAsync(ctx, Message{VChannel: "other"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("message for another vchannel: %v", err)
	}
	for _, s := range []string{"a", "b"} {
		if _, err := p.SendAsync(ctx, Message{Payload: []byte(s)}); err != nil {
			t.Fatal(err)
		}
	}
	closeProducer(t, p)

	tx, err := c.BeginTxn(ctx, "orders", 30*time.Second)
	if err != nil || tx.PChannel != "p1" || tx.Handle() == "" {
		t.Fatalf("begin: %+v, %v", tx, err)
	}
	if err := tx.Append(ctx, Message{Payload: []byte("t1")}, Message{Payload: []byte("t2")}); err != nil {
		t.Fatal(err)
	}
	acks, err := tx.Commit(ctx)
	if err != nil || len(acks) != 3 {
		t.Fatalf("commit: %+v, %v", acks, err)
	}
	if again, err := tx.Commit(ctx); err != nil || len(again) != 1 || !again[0].Duplicate {
		t.Fatalf("commit again: %+v, %v", again, err)
	}
	rb, err := c.BeginTxn(ctx, "orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := rb.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rb.Append(ctx, Message{Payload: []byte("x")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("append after rollback: %v", err)
	}

	co, err := c.VChannelConsumer("orders", ConsumerConfig{Wait: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got := payloadsOf(consumeAll(t, co)); !slices.Equal(got, []string{"a", "b", "t1", "t2"}) {
		t.Fatalf("consume by vchannel: %q", got)
	}

	fr, err := c.Flush(ctx, "p1")
	if err != nil || fr.Checkpoint == 0 {
		t.Fatalf("flush: %+v, %v", fr, err)
	}
	if _, err := c.Flush(ctx, "p3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("flush of a pchannel never written: %v", err)
	}
	snap, err := c.CreateSnapshot(ctx, "snap", []string{"orders"})
	if err != nil || snap.State != "committed" || snap.Segments == 0 {
		t.Fatalf("snapshot: %+v, %v", snap, err)
	}
	if _, err := c.CreateSnapshot(ctx, "snap", []string{"orders", "x"}); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) {
		t.Fatalf("snapshot name taken: %v", err)
	}
	if ss, err := c.Snapshots(ctx, "orders"); err != nil || len(ss) != 1 || ss[0].Name != "snap" {
		t.Fatalf("list snapshots: %+v, %v", ss, err)
	}
	if _, err := c.Snapshot(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("describe unknown snapshot: %v", err)
	}

	job, err := c.Restore(ctx, "snap", RestoreOptions{Targets: map[string]string{"orders": "orders-restored"}})
	if err != nil || job.ID == "" {
		t.Fatalf("restore: %+v, %v", job, err)
	}
	var seen []RestoreJob
	job, err = c.WaitRestore(ctx, job.ID, 20*time.Millisecond, func(j RestoreJob) { seen = append(seen, j) })
	if err != nil || job.State != RestoreDone || job.Done != job.Total || len(seen) == 0 {
		t.Fatalf("wait restore: %+v, %v (%d states seen)", job, err, len(seen))
	}
	if _, err := c.Restore(ctx, "snap", RestoreOptions{Targets: map[string]string{"orders": "orders"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("restore onto an existing vchannel: %v", err)
	}

	rco, err := c.VChannelConsumer("orders-restored", ConsumerConfig{Wait: -1, Max: 2})
	if err != nil {
		t.Fatal(err)
	}
	hist := consumeAll(t, rco)
	if got := payloadsOf(hist); !slices.Equal(got, []string{"a", "b", "t1", "t2"}) || !hist[0].Restored || hist[0].VChannel != "orders-restored" {
		t.Fatalf("restored history %q (%+v)", got, hist)
	}
	if _, err := c.AppendVChannel(ctx, "orders-restored", []Message{{Payload: []byte("new"), Key: &Key{Producer: "k", Seq: 1}}}, AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	own := consumeAll(t, rco)
	if got := payloadsOf(own); !slices.Equal(got, []string{"new"}) || own[0].Restored {
		t.Fatalf("after the history: %q", got)
	}
	if pos := rco.Position(); pos != After(own[0].ID) {
		t.Fatalf("position %s after %v", pos, own[0].ID)
	}

	if err := c.DropSnapshot(ctx, "snap"); err != nil {
		t.Fatal(err)
	}
	if err := c.DropSnapshot(ctx, "snap"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("drop again: %v", err)
	}
	if d, err := c.DropVChannel(ctx, "orders"); err != nil || d.State != "dropped" {
		t.Fatalf("drop vchannel: %+v, %v", d, err)
	}
	if _, err := c.AppendVChannel(ctx, "orders", []Message{{Payload: []byte("late")}}, AppendOptions{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("append to a dropped vchannel: %v", err)
	}
}
