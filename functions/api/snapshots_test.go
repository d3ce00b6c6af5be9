package api

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
)

// TestFlushRoute: flush moves the checkpoint to the tail; reads of the
// flushed part come from segments, unchanged.
func TestFlushRoute(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	wantError(t, "flush unknown", ts.do("POST", "/v1/pchannels/p7/flush", "", nil), 404, wire.CodeUnknownPChannel)
	ts.createVChannel("v0", "p0")
	mustOK(t, "append", ts.postJSON("/v1/vchannels/v0/append", msgs("", "a", "b", "c")), nil)

	var fr wire.FlushResponse
	mustOK(t, "flush", ts.do("POST", "/v1/pchannels/p0/flush", "", nil), &fr)
	if fr.PChannel != "p0" || fr.Rounds < 1 || fr.Messages < 3 || fr.Segments < 1 || fr.Checkpoint == 0 {
		t.Fatalf("flush %+v", fr)
	}
	// The vchannel's record shows how far it is flushed.
	var v wire.VChannelOut
	mustOK(t, "describe v0", ts.get("/v1/vchannels/v0"), &v)
	if v.Position.Offset != fr.Checkpoint || v.Position.TimeTick == 0 || v.Position.Done {
		t.Fatalf("v0 position %+v after a flush to %d", v.Position, fr.Checkpoint)
	}
	mustOK(t, "flush again", ts.postJSON("/v1/pchannels/p0/flush", struct{}{}), &fr)
	if fr.Rounds != 0 || fr.Checkpoint == 0 {
		t.Fatalf("second flush %+v: want nothing to do", fr)
	}
	var rr wire.ReadResponse
	mustOK(t, "read flushed", ts.get("/v1/vchannels/v0/messages"), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("read after flush %q", got)
	}
	wantError(t, "flush with a body", ts.do("POST", "/v1/pchannels/p0/flush", wire.ContentTypeJSON, []byte(`{"x":1}`)), 400, wire.CodeMalformed)
}

// restoreUntilDone polls a restore job until it is no longer running.
func (ts *testServer) restoreUntilDone(id string) wire.RestoreOut {
	ts.t.Helper()
	var out wire.RestoreOut
	testkit.Eventually(ts.t, 30*time.Second, "restore "+id+" no longer running", func() bool {
		mustOK(ts.t.(*testing.T), "restore status", ts.get("/v1/restores/"+id), &out)
		return out.State != string(system.RestoreRunning)
	})
	return out
}

// TestSnapshotRoutes: create (idempotent; the name taken with other
// vchannels), list, describe, drop, and their refusals.
func TestSnapshotRoutes(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	ts.createVChannel("v0", "p0")
	ts.createVChannel("v1", "p1")
	mustOK(t, "append", ts.postJSON("/v1/vchannels/v0/append", msgs("", "a", "b")), nil)

	var s1 wire.SnapshotOut
	mustOK(t, "create", ts.postJSON("/v1/snapshots", wire.SnapshotCreateRequest{Name: "s1", VChannels: []string{"v0"}}), &s1)
	if s1.Name != "s1" || s1.State != "committed" || !slices.Equal(s1.VChannels, []string{"v0"}) ||
		s1.Messages < 2 || s1.Segments < 1 || len(s1.Cuts) != 1 || s1.Cuts[0].PChannel != "p0" || s1.TimeTick == 0 {
		t.Fatalf("snapshot %+v", s1)
	}
	var again wire.SnapshotOut
	mustOK(t, "create again", ts.postJSON("/v1/snapshots", wire.SnapshotCreateRequest{Name: "s1", VChannels: []string{"v0"}}), &again)
	if again.Version != s1.Version {
		t.Fatalf("create again changed the snapshot: %+v", again)
	}
	wantError(t, "name taken", ts.postJSON("/v1/snapshots", wire.SnapshotCreateRequest{Name: "s1", VChannels: []string{"v1"}}), 409, wire.CodeExists)
	wantError(t, "bad name", ts.postJSON("/v1/snapshots", wire.SnapshotCreateRequest{Name: "s/1", VChannels: []string{"v0"}}), 400, wire.CodeInvalidName)
	wantError(t, "no vchannels", ts.postJSON("/v1/snapshots", wire.SnapshotCreateRequest{Name: "s2"}), 400, wire.CodeInvalid)
	wantError(t, "unknown vchannel", ts.postJSON("/v1/snapshots", wire.SnapshotCreateRequest{Name: "s2", VChannels: []string{"nope"}}), 404, wire.CodeUnknownVChannel)
	mustOK(t, "create s2", ts.postJSON("/v1/snapshots", wire.SnapshotCreateRequest{Name: "s2", VChannels: []string{"v0", "v1"}}), nil)

	var list wire.SnapshotsResponse
	mustOK(t, "list", ts.get("/v1/snapshots"), &list)
	if len(list.Snapshots) != 2 || list.Snapshots[0].Name != "s1" || list.Snapshots[1].Name != "s2" {
		t.Fatalf("list %+v", list)
	}
	mustOK(t, "list v1", ts.get("/v1/snapshots?vchannel=v1"), &list)
	if len(list.Snapshots) != 1 || list.Snapshots[0].Name != "s2" {
		t.Fatalf("list of v1 %+v", list)
	}
	wantError(t, "list bad", ts.get("/v1/snapshots?vchannel=../x"), 400, wire.CodeInvalidName)

	var d wire.SnapshotOut
	mustOK(t, "describe", ts.get("/v1/snapshots/s1"), &d)
	if d.Name != "s1" || d.Version != s1.Version {
		t.Fatalf("describe %+v", d)
	}
	wantError(t, "describe unknown", ts.get("/v1/snapshots/nope"), 404, wire.CodeUnknownSnapshot)

	var v wire.VChannelOut
	mustOK(t, "pinned", ts.get("/v1/vchannels/v0"), &v)
	if !slices.Equal(v.Pins, []string{"s1", "s2"}) {
		t.Fatalf("v0 pins %v, want s1 and s2", v.Pins)
	}
	if r := ts.do("DELETE", "/v1/snapshots/s1", "", nil); r.status != 204 {
		t.Fatalf("drop: %d %s", r.status, r.body)
	}
	wantError(t, "drop again", ts.do("DELETE", "/v1/snapshots/s1", "", nil), 404, wire.CodeUnknownSnapshot)
	wantError(t, "describe dropped", ts.get("/v1/snapshots/s1"), 404, wire.CodeUnknownSnapshot)
	mustOK(t, "unpinned", ts.get("/v1/vchannels/v0"), &v)
	if !slices.Equal(v.Pins, []string{"s2"}) {
		t.Fatalf("v0 pins %v after dropping s1", v.Pins)
	}
	// A dropped name may be used again.
	mustOK(t, "create s1 anew", ts.postJSON("/v1/snapshots", wire.SnapshotCreateRequest{Name: "s1", VChannels: []string{"v1"}}), nil)
}

// TestRestoreRoutes: a restore job creates the target vchannel with the
// snapshot's history, read first (restored positions), then the target's
// own messages; the job is idempotent by ID; refusals.
func TestRestoreRoutes(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	ts.createVChannel("v0", "p0")
	mustOK(t, "append", ts.postJSON("/v1/vchannels/v0/append", msgs("", "a", "b", "c")), nil)
	mustOK(t, "snapshot", ts.postJSON("/v1/snapshots", wire.SnapshotCreateRequest{Name: "s1", VChannels: []string{"v0"}}), nil)
	mustOK(t, "append after the snapshot", ts.postJSON("/v1/vchannels/v0/append", msgs("", "d")), nil)

	req := wire.RestoreRequest{JobID: "job-1", Targets: map[string]string{"v0": "r0"}}
	r := ts.postJSON("/v1/snapshots/s1/restore", req)
	if r.status != 200 && r.status != 202 {
		t.Fatalf("restore: %d %s", r.status, r.body)
	}
	var job wire.RestoreOut
	r.decode(t, &job)
	if job.ID != "job-1" || job.Snapshot != "s1" || job.Targets["v0"] != "r0" {
		t.Fatalf("restore answer %+v", job)
	}
	job = ts.restoreUntilDone("job-1")
	if job.State != string(system.RestoreDone) || job.Done != job.Total || job.Total < 2 || job.TimeTick == 0 {
		t.Fatalf("restore finished %+v", job)
	}

	var rv wire.VChannelOut
	mustOK(t, "describe target", ts.get("/v1/vchannels/r0"), &rv)
	if rv.State != "active" || rv.Created == nil {
		t.Fatalf("target %+v", rv)
	}
	// The restored history, a page at a time, then the target's own.
	var rr wire.ReadResponse
	mustOK(t, "read restored", ts.get("/v1/vchannels/r0/messages?max=2"), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"a", "b"}) || !rr.Messages[0].Restored || rr.Messages[0].VChannel != "r0" ||
		!strings.HasPrefix(rr.Next, "restored:") {
		t.Fatalf("first page %q next %s (%+v)", got, rr.Next, rr.Messages)
	}
	mustOK(t, "read restored on", ts.get("/v1/vchannels/r0/messages?from="+rr.Next), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"c"}) || !strings.HasPrefix(rr.Next, "id:") {
		t.Fatalf("second page %q next %s", got, rr.Next)
	}
	next := rr.Next
	mustOK(t, "append to the target", ts.postJSON("/v1/vchannels/r0/append", msgs("", "e")), nil)
	mustOK(t, "read the target's own", ts.get("/v1/vchannels/r0/messages?from="+next), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"e"}) || rr.Messages[0].Restored {
		t.Fatalf("own messages %q (%+v)", got, rr.Messages)
	}
	if rr.Messages[0].TimeTick <= job.TimeTick {
		t.Fatalf("the target's own message has timetick %d, not above the snapshot's %d (docs/protocol.md Snapshots rule 3)", rr.Messages[0].TimeTick, job.TimeTick)
	}
	mustOK(t, "read all", ts.get("/v1/vchannels/r0/messages?max=10"), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("from earliest %q: want the history (the first page stops at its end)", got)
	}
	mustOK(t, "read from a timetick", ts.get("/v1/vchannels/r0/messages?from=timetick:"+strconv.FormatUint(rr.Messages[1].TimeTick, 10)), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("from b's timetick %q", got)
	}

	// Idempotent by job ID.
	mustOK(t, "restore again", ts.postJSON("/v1/snapshots/s1/restore", req), &job)
	if job.State != string(system.RestoreDone) {
		t.Fatalf("restore again %+v", job)
	}
	wantError(t, "job ID of another restore", ts.postJSON("/v1/snapshots/s1/restore", wire.RestoreRequest{JobID: "job-1", Targets: map[string]string{"v0": "r1"}}), 409, wire.CodeExists)
	wantError(t, "target exists", ts.postJSON("/v1/snapshots/s1/restore", wire.RestoreRequest{Targets: map[string]string{"v0": "r0"}}), 409, wire.CodeExists)
	wantError(t, "unknown snapshot", ts.postJSON("/v1/snapshots/nope/restore", wire.RestoreRequest{Targets: map[string]string{"v0": "r2"}}), 404, wire.CodeUnknownSnapshot)
	wantError(t, "targets miss a vchannel", ts.postJSON("/v1/snapshots/s1/restore", wire.RestoreRequest{Targets: map[string]string{"zz": "r2"}}), 400, wire.CodeInvalid)
	wantError(t, "no targets", ts.postJSON("/v1/snapshots/s1/restore", wire.RestoreRequest{}), 400, wire.CodeInvalid)
	wantError(t, "bad target", ts.postJSON("/v1/snapshots/s1/restore", wire.RestoreRequest{Targets: map[string]string{"v0": "../r"}}), 400, wire.CodeInvalidName)
	wantError(t, "bad job ID", ts.postJSON("/v1/snapshots/s1/restore", wire.RestoreRequest{JobID: "a/b", Targets: map[string]string{"v0": "r2"}}), 400, wire.CodeInvalidName)
	wantError(t, "unknown job", ts.get("/v1/restores/nope"), 404, wire.CodeUnknownRestore)

	// Without a job ID the server picks one.
	r = ts.postJSON("/v1/snapshots/s1/restore", wire.RestoreRequest{Targets: map[string]string{"v0": "r3"}})
	if r.status != 200 && r.status != 202 {
		t.Fatalf("restore without job ID: %d %s", r.status, r.body)
	}
	r.decode(t, &job)
	if job.ID == "" {
		t.Fatalf("no job ID: %+v", job)
	}
	ts.restoreUntilDone(job.ID)

	// Dropping the snapshot keeps the restored history readable.
	if r := ts.do("DELETE", "/v1/snapshots/s1", "", nil); r.status != 204 {
		t.Fatalf("drop: %d %s", r.status, r.body)
	}
	mustOK(t, "read after the snapshot is dropped", ts.get("/v1/vchannels/r3/messages"), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("restored history after drop %q", got)
	}
	wantError(t, "restore a dropped snapshot", ts.postJSON("/v1/snapshots/s1/restore", wire.RestoreRequest{Targets: map[string]string{"v0": "r4"}}), 404, wire.CodeUnknownSnapshot)
}

// TestStatusShowsCheckpoint: the status table's checkpoint column is the
// flush checkpoint.
func TestStatusShowsCheckpoint(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	ts.mustAppend("p0", msgs("v0", "a"))
	var fr wire.FlushResponse
	mustOK(t, "flush", ts.do("POST", "/v1/pchannels/p0/flush", "", nil), &fr)
	var st wire.StatusResponse
	mustOK(t, "status", ts.get("/v1/pchannels"), &st)
	if len(st.PChannels) != 1 || st.PChannels[0].Checkpoint != fr.Checkpoint || fr.Checkpoint == 0 {
		t.Fatalf("status %+v after a flush to %d", st, fr.Checkpoint)
	}
}
