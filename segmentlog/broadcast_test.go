package segmentlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
)

func broadcastMsg(id, v string, deadline time.Time) sl.Message {
	return sl.Message{Type: sl.TypeBroadcast, VChannel: v, BroadcastID: id, Payload: []byte("ddl"),
		Properties: map[string]string{sl.BroadcastDeadlineProperty: sl.FormatBroadcastDeadline(deadline)}}
}

// TestWriterBroadcastCopyLandsOnce: a broadcast copy sent again — a retry,
// another coordinator instance, the next holder after a failover — gets the
// first copy's ID; a copy that arrives after its deadline is refused unless
// it had landed; copies on other vchannels are distinct.
func TestWriterBroadcastCopyLandsOnce(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "p1", nil)
	later := time.Now().Add(time.Minute)
	msgs := []sl.Message{broadcastMsg("b1", "v1", later), broadcastMsg("b1", "v2", later)}
	first, err := w.AppendControl(ctx, msgs...)
	if err != nil {
		t.Fatal(err)
	}
	if !msgs[0].Key.IsZero() {
		t.Fatal("AppendControl changed the caller's message")
	}
	again, err := w.AppendControl(ctx, msgs[1], msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].Duplicate || again[0].ID != first[1].ID || !again[1].Duplicate || again[1].ID != first[0].ID {
		t.Fatalf("copies sent again: %+v, want duplicates of %+v", again, first)
	}
	// Past its deadline, a landed copy still answers with its ID ...
	past := time.Now().Add(-time.Second)
	if a, err := w.AppendControl(ctx, broadcastMsg("b1", "v1", past)); err != nil || a[0].ID != first[0].ID {
		t.Fatalf("landed copy past its deadline: %+v, %v", a, err)
	}
	// ... and a new one is refused, with nothing written.
	if _, err := w.AppendControl(ctx, broadcastMsg("b2", "v1", past)); !errors.Is(err, sl.ErrDeadlinePassed) {
		t.Fatalf("late copy: %v, want ErrDeadlinePassed", err)
	}
	if _, err := w.AppendControl(ctx, broadcastMsg("b2", "v1", later)); err != nil {
		t.Fatalf("the same copy before its deadline: %v", err)
	}
	// A late copy refuses its whole call: the timely copy before it is not
	// written either, and its key is free for the next attempt.
	if _, err := w.AppendControl(ctx, broadcastMsg("b3", "v1", later), broadcastMsg("b4", "v1", past)); !errors.Is(err, sl.ErrDeadlinePassed) {
		t.Fatalf("call with a late copy: %v, want ErrDeadlinePassed", err)
	}
	if a, err := w.AppendControl(ctx, broadcastMsg("b3", "v1", later)); err != nil || a[0].Duplicate {
		t.Fatalf("the timely copy sent again: %+v, %v; want a fresh append", a, err)
	}
	w.Close(ctx)

	// The next holder remembers the copies (rebuilt from the WAL).
	w2 := openWriter(t, store, "p1", nil)
	defer w2.Close(ctx)
	after, err := w2.AppendControl(ctx, msgs...)
	if err != nil {
		t.Fatal(err)
	}
	if after[0].ID != first[0].ID || after[1].ID != first[1].ID {
		t.Fatalf("copies after failover: %+v, want %+v", after, first)
	}
	got := scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second)
	if len(got) != 4 {
		t.Fatalf("delivered %d copies, want 4 (b1 on v1 and v2, b2 and b3 on v1): %+v", len(got), got)
	}
	for _, d := range got {
		if d.Type != sl.TypeBroadcast || d.BroadcastID == "" {
			t.Fatalf("delivered %+v", d)
		}
	}
}

func TestWriterRejectsBadBroadcasts(t *testing.T) {
	ctx := context.Background()
	w := openWriter(t, objstore.NewMemory(), "p1", nil)
	defer w.Close(ctx)
	later := time.Now().Add(time.Minute)
	noDeadline := broadcastMsg("b1", "v1", later)
	noDeadline.Properties = nil
	badDeadline := broadcastMsg("b1", "v1", later)
	badDeadline.Properties[sl.BroadcastDeadlineProperty] = "soon"
	keyed := broadcastMsg("b1", "v1", later)
	keyed.Key = sl.IdemKey{Producer: "me", Epoch: 1, Seq: 1}
	noID := broadcastMsg("", "v1", later)
	badID := broadcastMsg("../b", "v1", later)
	for name, m := range map[string]sl.Message{"no deadline": noDeadline, "bad deadline": badDeadline,
		"own key": keyed, "no ID": noID, "bad ID": badID} {
		if _, err := w.AppendControl(ctx, m); !errors.Is(err, sl.ErrInvalidMessage) && !errors.Is(err, sl.ErrInvalidName) {
			t.Errorf("%s: %v, want ErrInvalidMessage or ErrInvalidName", name, err)
		}
	}
	if _, err := w.Append(ctx, broadcastMsg("b1", "v1", later)); err == nil {
		t.Error("Append took a broadcast message")
	}
	if st := w.Stats(); st.MessagesAcked != 0 {
		t.Fatalf("%d messages written", st.MessagesAcked)
	}
}

// TestBroadcastCopyBytes: a copy that BroadcastCopyBytes says fits a
// writer's batch limit is taken by a writer with that limit; a copy that
// does not fit is refused with ErrTooLarge.
func TestBroadcastCopyBytes(t *testing.T) {
	ctx := context.Background()
	m := broadcastMsg("ddl-7", "orders", time.Now().Add(time.Minute))
	m.Properties["k"] = "v"
	props := map[string]string{"k": "v"}
	limit := sl.BroadcastCopyBytes(m.BroadcastID, m.VChannel, m.Payload, props)
	w := openWriter(t, objstore.NewMemory(), "p1", func(c *sl.WriterConfig) { c.MaxBatchBytes = limit })
	defer w.Close(ctx)
	if _, err := w.AppendControl(ctx, m); err != nil {
		t.Fatalf("a copy of %d bytes under a limit of %d: %v", limit, limit, err)
	}
	big := broadcastMsg("ddl-8", "orders", time.Now().Add(time.Minute))
	big.Properties["k"] = "v"
	big.Payload = make([]byte, len(m.Payload)+3) // over the limit even with a deadline of today's length
	if _, err := w.AppendControl(ctx, big); !errors.Is(err, sl.ErrTooLarge) {
		t.Fatalf("a copy of %d bytes (BroadcastCopyBytes) under a limit of %d: %v, want ErrTooLarge",
			sl.BroadcastCopyBytes(big.BroadcastID, big.VChannel, big.Payload, props), limit, err)
	}
}
