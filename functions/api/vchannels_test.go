package api

import (
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/infra/objstore"
)

// wantError fails unless r is the error answer (status, code).
func wantError(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, r.body, status, code)
	}
	if got := r.errorCode(t); got != code {
		t.Fatalf("%s: code %s, want %s (%s)", what, got, code, r.body)
	}
}

// mustOK fails unless r is 200, and decodes it into v (if not nil).
func mustOK(t *testing.T, what string, r response, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: %d %s", what, r.status, r.body)
	}
	if v != nil {
		reflect.ValueOf(v).Elem().SetZero() // json would merge into what is there
		r.decode(t, v)
	}
}

func (ts *testServer) createVChannel(name, pchannel string) wire.VChannelOut {
	ts.t.Helper()
	var v wire.VChannelOut
	mustOK(ts.t.(*testing.T), "create "+name, ts.postJSON("/v1/vchannels", wire.VChannelCreateRequest{Name: name, PChannel: pchannel}), &v)
	return v
}

func payloads(ms []wire.MessageOut) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Payload))
	}
	return out
}

// TestVChannelRegistryRoutes: create (idempotent, binding conflicts, the
// pchannel set), list with filters, describe, locate and drop.
func TestVChannelRegistryRoutes(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())

	v0 := ts.createVChannel("v0", "p0")
	if v0.Name != "v0" || v0.PChannel != "p0" || v0.State != "active" || v0.Created == nil || len(v0.Pins) != 0 {
		t.Fatalf("created %+v", v0)
	}
	if again := ts.createVChannel("v0", ""); again.PChannel != "p0" || again.Version != v0.Version {
		t.Fatalf("create again: %+v, want the same record", again)
	}
	wantError(t, "other binding", ts.postJSON("/v1/vchannels", wire.VChannelCreateRequest{Name: "v0", PChannel: "p1"}), 409, wire.CodeBindingConflict)
	wantError(t, "pchannel outside the set", ts.postJSON("/v1/vchannels", wire.VChannelCreateRequest{Name: "v9", PChannel: "p9"}), 404, wire.CodeUnknownPChannel)
	wantError(t, "bad name", ts.postJSON("/v1/vchannels", wire.VChannelCreateRequest{Name: "../x"}), 400, wire.CodeInvalidName)
	wantError(t, "unknown field", ts.do("POST", "/v1/vchannels", wire.ContentTypeJSON, []byte(`{"name":"v1","color":"red"}`)), 400, wire.CodeMalformed)
	wantError(t, "no body", ts.do("POST", "/v1/vchannels", wire.ContentTypeJSON, nil), 400, wire.CodeMalformed)

	v1 := ts.createVChannel("v1", "")
	if v1.PChannel == "p0" {
		t.Fatalf("v1 bound to %s, want the least loaded pchannel (not p0)", v1.PChannel)
	}

	var list wire.VChannelsResponse
	mustOK(t, "list", ts.get("/v1/vchannels"), &list)
	if len(list.VChannels) != 2 || list.VChannels[0].Name != "v0" || list.VChannels[1].Name != "v1" {
		t.Fatalf("list %+v", list)
	}
	mustOK(t, "list p0", ts.get("/v1/vchannels?pchannel=p0"), &list)
	if len(list.VChannels) != 1 || list.VChannels[0].Name != "v0" {
		t.Fatalf("list of p0 %+v", list)
	}
	mustOK(t, "list dropped", ts.get("/v1/vchannels?state=dropped"), &list)
	if len(list.VChannels) != 0 {
		t.Fatalf("dropped: %+v", list)
	}
	wantError(t, "bad state", ts.get("/v1/vchannels?state=gone"), 400, wire.CodeMalformed)
	wantError(t, "unknown parameter", ts.get("/v1/vchannels?color=red"), 400, wire.CodeMalformed)

	var d wire.VChannelOut
	mustOK(t, "describe", ts.get("/v1/vchannels/v0"), &d)
	if d.Name != "v0" || d.PChannel != "p0" {
		t.Fatalf("describe %+v", d)
	}
	wantError(t, "describe unknown", ts.get("/v1/vchannels/nope"), 404, wire.CodeUnknownVChannel)

	// The create appended through this server's pool, which holds p0 now.
	var loc wire.LocationOut
	mustOK(t, "locate", ts.get("/v1/vchannels/v0/location"), &loc)
	if loc.PChannel != "p0" || loc.Node != ts.srv.sc.Holder || loc.Term == 0 {
		t.Fatalf("location %+v", loc)
	}
	wantError(t, "locate unknown", ts.get("/v1/vchannels/nope/location"), 404, wire.CodeUnknownVChannel)

	mustOK(t, "drop", ts.do("DELETE", "/v1/vchannels/v0", "", nil), &d)
	if d.State != "dropped" || d.Dropped == nil || d.DroppedAt == nil || !d.Position.Done {
		t.Fatalf("dropped %+v", d)
	}
	mustOK(t, "drop again", ts.do("DELETE", "/v1/vchannels/v0", "", nil), nil)
	wantError(t, "drop unknown", ts.do("DELETE", "/v1/vchannels/nope", "", nil), 404, wire.CodeUnknownVChannel)
	wantError(t, "create a dropped name", ts.postJSON("/v1/vchannels", wire.VChannelCreateRequest{Name: "v0"}), 409, wire.CodeVChannelDropped)
	wantError(t, "locate dropped", ts.get("/v1/vchannels/v0/location"), 409, wire.CodeVChannelDropped)
	mustOK(t, "list dropped", ts.get("/v1/vchannels?state=dropped"), &list)
	if len(list.VChannels) != 1 || list.VChannels[0].Name != "v0" {
		t.Fatalf("dropped: %+v", list)
	}
}

// TestVChannelDataPath: appends and reads by vchannel run the pchannel
// routes' code on the bound pchannel, kept to the vchannel.
func TestVChannelDataPath(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	ts.createVChannel("v0", "p0")

	var ar wire.AppendResponse
	mustOK(t, "append", ts.postJSON("/v1/vchannels/v0/append", wire.AppendRequest{Messages: []wire.MessageIn{
		{Payload: []byte("a")}, {VChannel: "v0", Payload: []byte("b")},
	}}), &ar)
	if ar.PChannel != "p0" || len(ar.Acks) != 2 {
		t.Fatalf("append %+v", ar)
	}
	// Another vchannel's message on the same pchannel stays out of v0's reads.
	ts.mustAppend("p0", msgs("stranger", "x"))
	mustOK(t, "append c", ts.postJSON("/v1/vchannels/v0/append", msgs("", "c")), nil)

	var rr wire.ReadResponse
	mustOK(t, "read", ts.get("/v1/vchannels/v0/messages"), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"a", "b", "c"}) || rr.VChannel != "v0" || rr.PChannel != "p0" {
		t.Fatalf("read %q (%+v)", got, rr)
	}
	if rr.Messages[0].Offset != ar.Acks[0].Offset || rr.Messages[0].VChannel != "v0" {
		t.Fatalf("first message %+v, ack %+v", rr.Messages[0], ar.Acks[0])
	}
	mustOK(t, "read on", ts.get("/v1/vchannels/v0/messages?from="+rr.Next+"&wait=50ms"), &rr)
	if len(rr.Messages) != 0 {
		t.Fatalf("read past the end: %+v", rr)
	}
	mustOK(t, "read max 1", ts.get("/v1/vchannels/v0/messages?max=1"), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("max 1: %q", got)
	}

	wantError(t, "other vchannel in the body", ts.postJSON("/v1/vchannels/v0/append", msgs("v1", "z")), 400, wire.CodeInvalid)
	wantError(t, "append unknown", ts.postJSON("/v1/vchannels/nope/append", msgs("", "z")), 404, wire.CodeUnknownVChannel)
	wantError(t, "read unknown", ts.get("/v1/vchannels/nope/messages"), 404, wire.CodeUnknownVChannel)
	wantError(t, "vchannel parameter", ts.get("/v1/vchannels/v0/messages?vchannel=v0"), 400, wire.CodeMalformed)
	wantError(t, "restored position of a plain vchannel", ts.get("/v1/vchannels/v0/messages?from=restored:0.0"), 400, wire.CodeInvalid)
	wantError(t, "bad position", ts.get("/v1/vchannels/v0/messages?from=restored:x"), 400, wire.CodeMalformed)
	wantError(t, "bad name", ts.postJSON("/v1/vchannels/-x/append", msgs("", "z")), 400, wire.CodeInvalidName)

	// The pchannel route keeps the vchannel route's rule: a registered
	// vchannel's messages go to its pchannel only, and not after its drop.
	mustOK(t, "raw append tagged v0", ts.postJSON("/v1/pchannels/p0/append", msgs("v0", "d")), nil)
	wantError(t, "raw append of v0 to another pchannel", ts.postJSON("/v1/pchannels/p1/append", msgs("v0", "z")), 409, wire.CodeBindingConflict)
	mustOK(t, "drop", ts.do("DELETE", "/v1/vchannels/v0", "", nil), nil)
	wantError(t, "append after drop", ts.postJSON("/v1/vchannels/v0/append", msgs("", "late")), 409, wire.CodeVChannelDropped)
	wantError(t, "raw append after drop", ts.postJSON("/v1/pchannels/p0/append", msgs("v0", "late")), 409, wire.CodeVChannelDropped)
	mixed := msgs("stranger", "ok")
	mixed.Messages = append(mixed.Messages, wire.MessageIn{VChannel: "v0", Payload: []byte("late")})
	wantError(t, "raw append after drop, second message", ts.postJSON("/v1/pchannels/p0/append", mixed), 409, wire.CodeVChannelDropped)
	mustOK(t, "read after drop", ts.get("/v1/vchannels/v0/messages"), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("read after drop %q", got)
	}
}

// TestVChannelAppendLeaseHeld: a node that does not hold the vchannel's
// pchannel does not redirect: after the lease wait it answers 503
// lease_held with Retry-After, and locate names the holder.
func TestVChannelAppendLeaseHeld(t *testing.T) {
	store := objstore.NewMemory()
	holderCfg := testConfig(t)
	holderCfg.Holder = "holder-node"
	holder := newTestServer(t, holderCfg, store)
	holder.createVChannel("v0", "p0") // holder's pool takes p0

	other := newTestServer(t, testConfig(t), store)
	r := other.postJSON("/v1/vchannels/v0/append", msgs("", "x"))
	wantError(t, "append on a node without the lease", r, 503, wire.CodeLeaseHeld)
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("503 lease_held without Retry-After")
	}
	var loc wire.LocationOut
	mustOK(t, "locate", other.get("/v1/vchannels/v0/location"), &loc)
	if loc.Node != "holder-node" {
		t.Fatalf("location %+v, want holder-node", loc)
	}
	mustOK(t, "append on the holder", holder.postJSON("/v1/vchannels/v0/append", msgs("", "x")), nil)
}
