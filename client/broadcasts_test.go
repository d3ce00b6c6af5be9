package client

import (
	"errors"
	"testing"
	"time"
)

// broadcastCopies reads vchannel v and returns its broadcast copies.
func broadcastCopies(t *testing.T, c *Client, v string) []Delivery {
	t.Helper()
	r, err := c.ReadVChannel(t.Context(), v, ReadOptions{Max: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []Delivery
	for _, d := range r.Messages {
		if d.Type == "broadcast" {
			out = append(out, d)
		}
	}
	return out
}

// TestBroadcast: a broadcast to vchannels on two pchannels, one copy on
// each; sent again, the same task; refusals; a sync ack pending until the
// pchannels are flushed; describe and list.
func TestBroadcast(t *testing.T) {
	c, _ := newClient(t, newServer(t, serverOptions{}))
	ctx := t.Context()
	for v, p := range map[string]string{"v0": "p0", "v1": "p1"} {
		if _, err := c.CreateVChannel(ctx, v, p); err != nil {
			t.Fatal(err)
		}
	}

	req := BroadcastRequest{ID: "ddl-1", VChannels: []string{"v1", "v0"}, Payload: []byte("create index"),
		Properties: map[string]string{"kind": "ddl"}}
	task, err := c.Broadcast(ctx, req)
	if err != nil || task.State != BroadcastDone || !task.Finished() || task.Ack != AckFast || len(task.Targets) != 2 ||
		task.Targets[0].VChannel != "v0" || task.Targets[1].PChannel != "p1" || task.FinishedAt == nil {
		t.Fatalf("broadcast: %+v, %v", task, err)
	}
	for _, tg := range task.Targets {
		cs := broadcastCopies(t, c, tg.VChannel)
		if len(cs) != 1 || cs[0].BroadcastID != "ddl-1" || string(cs[0].Payload) != "create index" ||
			cs[0].Properties["kind"] != "ddl" || tg.Appended == nil || cs[0].ID != (MessageID{tg.Appended.Offset, tg.Appended.Index}) {
			t.Fatalf("copies on %s: %+v; target %+v", tg.VChannel, cs, tg)
		}
	}
	if again, err := c.Broadcast(ctx, req); err != nil || again.Version != task.Version {
		t.Fatalf("again: %+v, %v", again, err)
	}
	if cs := broadcastCopies(t, c, "v0"); len(cs) != 1 {
		t.Fatalf("%d copies on v0 after sending again", len(cs))
	}
	other := req
	other.Payload = []byte("drop index")
	if _, err := c.Broadcast(ctx, other); !errors.Is(err, ErrConflict) {
		t.Fatalf("same ID, other payload: %v, want ErrConflict", err)
	}
	if _, err := c.Broadcast(ctx, BroadcastRequest{ID: "b2", VChannels: []string{"nope"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown vchannel: %v, want ErrNotFound", err)
	}
	if _, err := c.Broadcast(ctx, BroadcastRequest{ID: "b2", VChannels: []string{"v0"}, Ack: "eventually"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad ack: %v, want ErrInvalid", err)
	}
	if _, err := c.Broadcast(ctx, BroadcastRequest{ID: "b2"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no vchannels: %v, want ErrInvalid", err)
	}
	if _, err := c.DescribeBroadcast(ctx, "b2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("describe unknown: %v, want ErrNotFound", err)
	}

	// A negative Wait only persists the task.
	queued, err := c.Broadcast(ctx, BroadcastRequest{ID: "later", VChannels: []string{"v0"}, Wait: -1})
	if err != nil || queued.State != BroadcastPending || queued.Finished() || queued.Targets[0].Appended != nil {
		t.Fatalf("queued: %+v, %v", queued, err)
	}
	// A sync ack waits for the flushes: pending after a short wait, done
	// once both pchannels are flushed and the request is sent again.
	sreq := BroadcastRequest{ID: "trunc", VChannels: []string{"v0", "v1"}, Ack: AckSync, Wait: 200 * time.Millisecond}
	st, err := c.Broadcast(ctx, sreq)
	if err != nil || st.State != BroadcastPending || st.Targets[0].Appended == nil || st.Targets[0].Synced {
		t.Fatalf("sync broadcast before a flush: %+v, %v", st, err)
	}
	for _, p := range []string{"p0", "p1"} {
		if _, err := c.Flush(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	sreq.Wait = 0
	if st, err = c.Broadcast(ctx, sreq); err != nil || st.State != BroadcastDone || !st.Targets[0].Synced || !st.Targets[1].Synced {
		t.Fatalf("sync broadcast after the flushes: %+v, %v", st, err)
	}

	if d, err := c.DescribeBroadcast(ctx, "ddl-1"); err != nil || d.Version != task.Version || d.State != BroadcastDone {
		t.Fatalf("describe: %+v, %v", d, err)
	}
	all, err := c.ListBroadcasts(ctx, "")
	if err != nil || len(all) != 3 || all[0].ID != "ddl-1" || all[1].ID != "later" || all[2].ID != "trunc" {
		t.Fatalf("list: %+v, %v", all, err)
	}
	pending, err := c.ListBroadcasts(ctx, BroadcastPending)
	if err != nil || len(pending) != 1 || pending[0].ID != "later" {
		t.Fatalf("list pending: %+v, %v", pending, err)
	}
}
