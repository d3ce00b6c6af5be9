package api

import (
	"fmt"
	"slices"
	"testing"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
)

// TestTrimRoutes: a pchannel trim and a vchannel trim, idempotent and
// monotone; reads from below answer 410 truncated with the earliest
// position, reads from earliest start there, a reader past it never
// notices; bad points are 400s.
func TestTrimRoutes(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	ts.createVChannel("v0", "p0")
	ts.createVChannel("v1", "p0")
	var ids []string
	for i := range 6 {
		ar := ts.mustAppend("p0", msgs([]string{"v0", "v1"}[i%2], fmt.Sprint(i)))
		ids = append(ids, fmt.Sprintf("id:%d.%d", ar.Acks[0].Offset, ar.Acks[0].Index))
	}
	mustOK(t, "flush", ts.do("POST", "/v1/pchannels/p0/flush", "", nil), nil)
	ts.mustAppend("p0", msgs("v0", "6"))
	resumed := ts.mustRead("/v1/pchannels/p0/messages?from=" + ids[4] + "&max=1") // a reader past the point to come

	var tr wire.TrimResponse
	mustOK(t, "trim p0", ts.postJSON("/v1/pchannels/p0/trim", wire.TrimRequest{Before: ids[2]}), &tr)
	if tr.PChannel != "p0" || tr.Earliest != ids[2] {
		t.Fatalf("trim p0: %+v, want earliest %s", tr, ids[2])
	}
	mustOK(t, "trim p0 lower", ts.postJSON("/v1/pchannels/p0/trim", wire.TrimRequest{Before: ids[1]}), &tr)
	if tr.Earliest != ids[2] {
		t.Fatalf("a lower trim moved the point: %+v", tr)
	}
	r := ts.get("/v1/pchannels/p0/messages?from=" + ids[0])
	wantError(t, "read below the trim point", r, 410, wire.CodeTruncated)
	var e Error
	r.decode(t, &e)
	if e.Earliest != ids[2] {
		t.Fatalf("410 body %s: want earliest %s", r.body, ids[2])
	}
	if got := payloads(ts.mustRead("/v1/pchannels/p0/messages").Messages); !slices.Equal(got, []string{"2", "3", "4", "5", "6"}) {
		t.Fatalf("read from earliest after the trim: %q", got)
	}
	if got := payloads(ts.mustRead("/v1/pchannels/p0/messages?from=" + resumed.Next).Messages); !slices.Equal(got, []string{"5", "6"}) {
		t.Fatalf("a reader past the point: %q", got)
	}
	if got := payloads(ts.mustRead("/v1/pchannels/p0/messages?from=after:" + ids[4]).Messages); !slices.Equal(got, []string{"5", "6"}) {
		t.Fatalf("from after:%s: %q", ids[4], got)
	}
	// Right after the last message below the point: past it, never told.
	if got := payloads(ts.mustRead("/v1/pchannels/p0/messages?from=after:" + ids[1]).Messages); !slices.Equal(got, []string{"2", "3", "4", "5", "6"}) {
		t.Fatalf("from after:%s, the last message below the trim point: %q", ids[1], got)
	}

	// v0's own point, above the pchannel's: v1 is unaffected.
	mustOK(t, "trim v0", ts.postJSON("/v1/vchannels/v0/trim", wire.TrimRequest{Before: ids[4]}), &tr)
	if tr.VChannel != "v0" || tr.Earliest != ids[4] {
		t.Fatalf("trim v0: %+v, want earliest %s", tr, ids[4])
	}
	if got := payloads(ts.mustRead("/v1/vchannels/v0/messages").Messages); !slices.Equal(got, []string{"4", "6"}) {
		t.Fatalf("v0 from earliest after its trim: %q", got)
	}
	if got := payloads(ts.mustRead("/v1/vchannels/v1/messages").Messages); !slices.Equal(got, []string{"3", "5"}) {
		t.Fatalf("v1 from earliest: %q", got)
	}
	r = ts.get("/v1/vchannels/v0/messages?from=" + ids[2])
	wantError(t, "read v0 below its trim point", r, 410, wire.CodeTruncated)
	r.decode(t, &e)
	if e.Earliest != ids[4] {
		t.Fatalf("410 body %s: want earliest %s", r.body, ids[4])
	}
	// From v1's message below v0's point: nothing of v0 lies between.
	if got := payloads(ts.mustRead("/v1/vchannels/v0/messages?from=" + ids[3]).Messages); !slices.Equal(got, []string{"4", "6"}) {
		t.Fatalf("v0 from %s, where only v1's messages lie below its trim point: %q", ids[3], got)
	}
	mustOK(t, "trim v0 lower", ts.postJSON("/v1/vchannels/v0/trim", wire.TrimRequest{Before: ids[0]}), &tr)
	if tr.Earliest != ids[4] {
		t.Fatalf("a lower vchannel trim moved the point: %+v", tr)
	}

	wantError(t, "beyond the tail", ts.postJSON("/v1/pchannels/p0/trim", wire.TrimRequest{Before: "id:99999.0"}), 400, wire.CodeInvalid)
	wantError(t, "not an ID", ts.postJSON("/v1/pchannels/p0/trim", wire.TrimRequest{Before: "latest"}), 400, wire.CodeInvalid)
	wantError(t, "malformed", ts.postJSON("/v1/pchannels/p0/trim", wire.TrimRequest{Before: "id:x"}), 400, wire.CodeMalformed)
	wantError(t, "no body", ts.do("POST", "/v1/pchannels/p0/trim", "", nil), 400, wire.CodeMalformed)
	wantError(t, "unknown pchannel", ts.postJSON("/v1/pchannels/p9/trim", wire.TrimRequest{Before: "id:0.0"}), 404, wire.CodeUnknownPChannel)
	wantError(t, "unknown vchannel", ts.postJSON("/v1/vchannels/nope/trim", wire.TrimRequest{Before: "id:0.0"}), 404, wire.CodeUnknownVChannel)
}

// TestRetentionRoutes: policies are set per pchannel and vchannel, shown
// with the earliest position and the bytes held by the status table and
// describe; applying them trims; bad policies are 400s.
func TestRetentionRoutes(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	ts.createVChannel("v0", "p0")
	for i := range 3 {
		ts.mustAppend("p0", msgs("v0", fmt.Sprint(i)))
		mustOK(t, "flush", ts.do("POST", "/v1/pchannels/p0/flush", "", nil), nil)
	}
	last := ts.mustAppend("p0", msgs("v0", "3")) // in the WAL only

	var out wire.RetentionOut
	mustOK(t, "set p0", ts.do("PUT", "/v1/pchannels/p0/retention", wire.ContentTypeJSON, []byte(`{"max_bytes":1}`)), &out)
	if out.PChannel != "p0" || out.MaxBytes != 1 || out.BytesHeld == 0 || out.Earliest != "id:0.0" {
		t.Fatalf("set p0: %+v", out)
	}
	var st wire.StatusResponse
	mustOK(t, "status", ts.get("/v1/pchannels"), &st)
	if len(st.PChannels) != 1 || st.PChannels[0].Retention != out {
		t.Fatalf("status row %+v, want retention %+v", st.PChannels, out)
	}
	ret := ts.srv.sys.Retention()
	if res, err := ret.Apply(t.Context()); err != nil || res.Trimmed != 1 {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	mustOK(t, "status", ts.get("/v1/pchannels"), &st)
	if r := st.PChannels[0].Retention; r.BytesHeld != 0 || r.Earliest == "id:0.0" {
		t.Fatalf("after the policy: %+v", r)
	}
	if got := payloads(ts.mustRead("/v1/vchannels/v0/messages").Messages); !slices.Equal(got, []string{"3"}) {
		t.Fatalf("read after retention trimmed every flushed file: %q (last ack %+v)", got, last.Acks[0])
	}

	mustOK(t, "set v0", ts.do("PUT", "/v1/vchannels/v0/retention", wire.ContentTypeJSON, []byte(`{"max_age":"1h"}`)), &out)
	var v wire.VChannelOut
	mustOK(t, "describe v0", ts.get("/v1/vchannels/v0"), &v)
	if v.Retention == nil || v.Retention.MaxAge != "1h0m0s" || v.Retention.VChannel != "v0" {
		t.Fatalf("describe v0: %+v", v.Retention)
	}
	wantError(t, "negative age", ts.do("PUT", "/v1/pchannels/p0/retention", wire.ContentTypeJSON, []byte(`{"max_age":"-1s"}`)), 400, wire.CodeMalformed)
	wantError(t, "negative bytes", ts.do("PUT", "/v1/vchannels/v0/retention", wire.ContentTypeJSON, []byte(`{"max_bytes":-1}`)), 400, wire.CodeMalformed)
	wantError(t, "unknown field", ts.do("PUT", "/v1/pchannels/p0/retention", wire.ContentTypeJSON, []byte(`{"age":"1h"}`)), 400, wire.CodeMalformed)
	wantError(t, "unknown pchannel", ts.do("PUT", "/v1/pchannels/p9/retention", wire.ContentTypeJSON, []byte(`{}`)), 404, wire.CodeUnknownPChannel)
}

// TestSnapshotScope: a snapshot of a vchannel holds what a reader of it
// delivers: not a message tagged with its name before it was created, not
// a trimmed one; its count, and a restore, say the same.
func TestSnapshotScope(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	ts.mustAppend("p2", msgs("s1v", "early")) // a raw tag: s1v does not exist yet
	ts.createVChannel("s1v", "p2")
	var ids []string
	for _, p := range []string{"a", "b", "c"} {
		ar := ts.mustAppend("p2", msgs("s1v", p))
		ids = append(ids, fmt.Sprintf("id:%d.%d", ar.Acks[0].Offset, ar.Acks[0].Index))
	}
	read := func(path string) []string { return payloads(ts.mustRead(path).Messages) }
	if got := read("/v1/vchannels/s1v/messages"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("s1v reads %q", got)
	}
	var s wire.SnapshotOut
	mustOK(t, "snapshot", ts.postJSON("/v1/snapshots", wire.SnapshotCreateRequest{Name: "all", VChannels: []string{"s1v"}}), &s)
	if s.Messages != 4 { // a, b, c and s1v's create message
		t.Fatalf("snapshot of s1v counts %d messages, want 4 (early is not s1v's)", s.Messages)
	}
	mustOK(t, "trim s1v", ts.postJSON("/v1/vchannels/s1v/trim", wire.TrimRequest{Before: ids[1]}), nil)
	mustOK(t, "snapshot after the trim", ts.postJSON("/v1/snapshots", wire.SnapshotCreateRequest{Name: "trimmed", VChannels: []string{"s1v"}}), &s)
	if s.Messages != 2 {
		t.Fatalf("snapshot of s1v after its trim counts %d messages, want 2 (b, c)", s.Messages)
	}
	for name, want := range map[string][]string{"all": {"a", "b", "c"}, "trimmed": {"b", "c"}} {
		var job wire.RestoreOut
		r := ts.postJSON("/v1/snapshots/"+name+"/restore", wire.RestoreRequest{Targets: map[string]string{"s1v": "r-" + name}})
		if r.status != 200 && r.status != 202 {
			t.Fatalf("restore %s: %d %s", name, r.status, r.body)
		}
		r.decode(t, &job)
		if job = ts.restoreUntilDone(job.ID); job.State != string(system.RestoreDone) {
			t.Fatalf("restore %s: %+v", name, job)
		}
		if got := read("/v1/vchannels/r-" + name + "/messages"); !slices.Equal(got, want) {
			t.Fatalf("restored %s reads %q, want %q", name, got, want)
		}
	}
}
