package api

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// broadcastCopies reads vchannel v over HTTP and returns its broadcast
// copies.
func (ts *testServer) broadcastCopies(v string) []wire.MessageOut {
	ts.t.Helper()
	var rr wire.ReadResponse
	mustOK(ts.t.(*testing.T), "read "+v, ts.get("/v1/vchannels/"+v+"/messages?max=1000"), &rr)
	var out []wire.MessageOut
	for _, m := range rr.Messages {
		if m.Type == "broadcast" {
			out = append(out, m)
		}
	}
	return out
}

// postBroadcast sends a broadcast and decodes the task, failing unless the
// answer is want (200 or 202).
func (ts *testServer) postBroadcast(req wire.BroadcastRequest, want int) wire.BroadcastOut {
	ts.t.Helper()
	r := ts.postJSON("/v1/broadcasts", req)
	if r.status != want {
		ts.t.Fatalf("broadcast %s: %d %s, want %d", req.ID, r.status, r.body, want)
	}
	var out wire.BroadcastOut
	r.decode(ts.t, &out)
	return out
}

// checkOneCopy checks that each target of task has exactly one copy on its
// vchannel, where the task says it landed, with the payload.
func (ts *testServer) checkOneCopy(task wire.BroadcastOut, payload string) {
	ts.t.Helper()
	for _, tg := range task.Targets {
		cs := ts.broadcastCopies(tg.VChannel)
		switch {
		case len(cs) != 1:
			ts.t.Fatalf("broadcast %s: %d copies on %s, want 1: %+v", task.ID, len(cs), tg.VChannel, cs)
		case string(cs[0].Payload) != payload || cs[0].BroadcastID != task.ID:
			ts.t.Fatalf("copy on %s: %+v", tg.VChannel, cs[0])
		case tg.Appended == nil || cs[0].Offset != tg.Appended.Offset || cs[0].Index != tg.Appended.Index || cs[0].TimeTick != tg.Appended.TimeTick:
			ts.t.Fatalf("copy on %s at %d.%d, task says %+v", tg.VChannel, cs[0].Offset, cs[0].Index, tg.Appended)
		}
	}
}

// TestBroadcastRoutes: a broadcast to vchannels on two pchannels puts one
// copy on each, readable over HTTP; sending it again is idempotent; other
// content under the ID, unknown and dropped vchannels are refused; list and
// describe.
func TestBroadcastRoutes(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	ts.createVChannel("v0", "p0")
	ts.createVChannel("v1", "p1")
	ts.createVChannel("v2", "p0")
	mustOK(t, "append", ts.postJSON("/v1/vchannels/v0/append", msgs("", "before")), nil)

	req := wire.BroadcastRequest{ID: "ddl-1", VChannels: []string{"v1", "v0"}, Payload: []byte("create index"),
		Properties: map[string]string{"kind": "ddl"}}
	task := ts.postBroadcast(req, http.StatusOK)
	if task.ID != "ddl-1" || task.State != "done" || task.Ack != "fast" || task.FinishedAt == nil || task.Error != "" ||
		len(task.Targets) != 2 || task.Targets[0].VChannel != "v0" || task.Targets[0].PChannel != "p0" ||
		task.Targets[1].VChannel != "v1" || task.Targets[1].PChannel != "p1" {
		t.Fatalf("task %+v", task)
	}
	ts.checkOneCopy(task, "create index")
	c := ts.broadcastCopies("v1")[0]
	if c.Properties["kind"] != "ddl" || c.Properties[segmentlog.BroadcastDeadlineProperty] == "" || c.VChannel != "v1" {
		t.Fatalf("copy %+v", c)
	}
	var rr wire.ReadResponse
	mustOK(t, "read v0", ts.get("/v1/vchannels/v0/messages"), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"before", "create index"}) {
		t.Fatalf("v0 reads %q: the data, then the copy", got)
	}
	if cs := ts.broadcastCopies("v2"); len(cs) != 0 {
		t.Fatalf("v2 got %+v", cs)
	}

	// The same ID and content: the same task, no second copy.
	again := ts.postBroadcast(req, http.StatusOK)
	if again.Version != task.Version || again.State != "done" {
		t.Fatalf("again %+v, want %+v", again, task)
	}
	ts.checkOneCopy(task, "create index")
	other := req
	other.Payload = []byte("drop index")
	wantError(t, "same ID, other payload", ts.postJSON("/v1/broadcasts", other), 409, wire.CodeExists)
	other = req
	other.VChannels = []string{"v0"}
	wantError(t, "same ID, other vchannels", ts.postJSON("/v1/broadcasts", other), 409, wire.CodeExists)

	wantError(t, "unknown vchannel", ts.postJSON("/v1/broadcasts", wire.BroadcastRequest{ID: "b2", VChannels: []string{"v0", "nope"}}), 404, wire.CodeUnknownVChannel)
	mustOK(t, "drop v2", ts.do("DELETE", "/v1/vchannels/v2", "", nil), nil)
	wantError(t, "dropped vchannel", ts.postJSON("/v1/broadcasts", wire.BroadcastRequest{ID: "b2", VChannels: []string{"v2"}}), 409, wire.CodeVChannelDropped)
	wantError(t, "refused broadcast persisted", ts.get("/v1/broadcasts/b2"), 404, wire.CodeUnknownBroadcast)

	// wait 0s persists the task only; sending it again runs it.
	queued := ts.postBroadcast(wire.BroadcastRequest{ID: "b3", VChannels: []string{"v0"}, Payload: []byte("x"), Wait: "0s"}, http.StatusAccepted)
	if queued.State != "pending" || queued.Targets[0].Appended != nil || queued.FinishedAt != nil {
		t.Fatalf("queued %+v", queued)
	}
	var d wire.BroadcastOut
	mustOK(t, "describe pending", ts.get("/v1/broadcasts/b3"), &d)
	if d.State != "pending" {
		t.Fatalf("describe %+v", d)
	}
	var list wire.BroadcastsResponse
	mustOK(t, "list pending", ts.get("/v1/broadcasts?state=pending"), &list)
	if len(list.Broadcasts) != 1 || list.Broadcasts[0].ID != "b3" {
		t.Fatalf("pending: %+v", list)
	}
	done := ts.postBroadcast(wire.BroadcastRequest{ID: "b3", VChannels: []string{"v0"}, Payload: []byte("x")}, http.StatusOK)
	if done.State != "done" {
		t.Fatalf("b3 sent again: %+v", done)
	}

	mustOK(t, "list", ts.get("/v1/broadcasts"), &list)
	if len(list.Broadcasts) != 2 || list.Broadcasts[0].ID != "b3" || list.Broadcasts[1].ID != "ddl-1" {
		t.Fatalf("list %+v", list)
	}
	mustOK(t, "list pending", ts.get("/v1/broadcasts?state=pending"), &list)
	if len(list.Broadcasts) != 0 {
		t.Fatalf("pending after the runs: %+v", list)
	}
	mustOK(t, "describe", ts.get("/v1/broadcasts/ddl-1"), &d)
	if d.ID != "ddl-1" || d.Version != task.Version || d.Targets[1].Appended == nil {
		t.Fatalf("describe %+v", d)
	}
	wantError(t, "describe unknown", ts.get("/v1/broadcasts/nope"), 404, wire.CodeUnknownBroadcast)
	wantError(t, "list bad state", ts.get("/v1/broadcasts?state=gone"), 400, wire.CodeMalformed)
	wantError(t, "describe bad ID", ts.get("/v1/broadcasts/-x"), 400, wire.CodeInvalidName)
}

// TestBroadcastSyncAck: with ack sync the route answers 202 while no flush
// has passed the copies; after the flushes, a maintenance round finishes
// the task.
func TestBroadcastSyncAck(t *testing.T) {
	store := objstore.NewMemory()
	ts := newTestServer(t, testConfig(t), store)
	ts.createVChannel("v0", "p0")
	ts.createVChannel("v1", "p1")

	task := ts.postBroadcast(wire.BroadcastRequest{ID: "trunc", VChannels: []string{"v0", "v1"}, Payload: []byte("t"),
		Ack: "sync", Wait: "300ms"}, http.StatusAccepted)
	if task.State != "pending" || task.Ack != "sync" {
		t.Fatalf("task %+v", task)
	}
	for _, tg := range task.Targets {
		if tg.Appended == nil || tg.Synced {
			t.Fatalf("target %+v: want appended, not synced", tg)
		}
	}
	ts.checkOneCopy(task, "t")

	for _, p := range []string{"p0", "p1"} {
		mustOK(t, "flush "+p, ts.do("POST", "/v1/pchannels/"+p+"/flush", "", nil), nil)
	}
	cfg := testConfig(t)
	cfg.Holder = "maintenance"
	m, err := system.New(cfg.Config, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RunMaintenance(t.Context()); err != nil {
		t.Fatalf("maintenance round: %v", err)
	}
	var d wire.BroadcastOut
	mustOK(t, "describe", ts.get("/v1/broadcasts/trunc"), &d)
	if d.State != "done" || !d.Targets[0].Synced || !d.Targets[1].Synced || d.FinishedAt == nil {
		t.Fatalf("after the flushes and a round: %+v", d)
	}
	ts.checkOneCopy(d, "t")
}

// TestMaintenanceResumesBroadcast: a task persisted by a server that then
// stopped is run by the maintenance round, which appends its copies through
// writers of its own and closes them, so that the next server takes the
// pchannels at once.
func TestMaintenanceResumesBroadcast(t *testing.T) {
	store := objstore.NewMemory()
	first, err := newServer(t, testConfig(t), store)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for v, p := range map[string]string{"v0": "p0", "v1": "p1"} {
		if _, err := first.sys.Registry().Create(ctx, first.sys.Pool(), v, p); err != nil {
			t.Fatal(err)
		}
	}
	h := first.Handler(AllRoles)
	rec := newRecorder()
	h.ServeHTTP(rec, mustRequest(t, "POST", "/v1/broadcasts", wire.ContentTypeJSON,
		`{"id":"left","vchannels":["v0","v1"],"payload":"bGVmdA==","wait":"0s"}`))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("submit: %d %s", rec.Code, rec.Body)
	}
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := first.Close(closeCtx); err != nil { // releases p0 and p1
		t.Fatal(err)
	}

	cfg := testConfig(t)
	cfg.Holder = "maintenance"
	m, err := system.New(cfg.Config, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RunMaintenance(ctx); err != nil {
		t.Fatalf("maintenance round: %v", err)
	}

	next := testConfig(t)
	next.Holder = "next"
	ts := newTestServer(t, next, store)
	var d wire.BroadcastOut
	mustOK(t, "describe", ts.get("/v1/broadcasts/left"), &d)
	if d.State != "done" {
		t.Fatalf("after the round: %+v", d)
	}
	ts.checkOneCopy(d, "left")
	// The round released its writers' leases: had it not, this append
	// would meet a live lease (4 s) and answer 503 lease_held after the
	// 300 ms lease wait.
	mustOK(t, "append after the round", ts.postJSON("/v1/vchannels/v0/append", msgs("", "after")), nil)
}
