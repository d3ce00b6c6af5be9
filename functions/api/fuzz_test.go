package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// FuzzDecodeAppend: the append decoder never panics, answers every refusal
// with a 4xx *Error, and whatever it accepts passes the writer's own rules
// (encodes as a batch).
func FuzzDecodeAppend(f *testing.F) {
	f.Add(wire.ContentTypeJSON, []byte(`{"messages":[{"vchannel":"v0","type":"insert","payload":"aGk=","properties":{"a":"b"},"key":{"producer":"p","epoch":1,"seq":2}}],"expected_offset":3}`))
	f.Add(wire.ContentTypeJSON+"; charset=UTF-8", []byte(`{"messages":[{"vchannel":"v0"}]}`))
	f.Add(wire.ContentTypeJSON, []byte(`{"messages":[{"vchannel":"v0","key":{"producer":"","seq":1}}]}`))
	f.Add(wire.ContentTypeJSON, []byte("{\"messages\":[{\"vchannel\":\"\xff\"}]}"))
	f.Add(wire.ContentTypeBatch, []byte("CWAL\x01\x01"))
	b, _ := (&segmentlog.Batch{Kind: segmentlog.KindData, Messages: []segmentlog.Message{
		{Type: segmentlog.TypeData, VChannel: "v0", TimeTick: 1, Payload: []byte("x")}}}).Encode()
	f.Add(wire.ContentTypeBatch, b)
	lim := limits{maxMessages: 100, maxBytes: 64 << 10}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		in, err := decodeAppend(contentType, body, lim)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || ae.status < 400 || ae.status >= 500 || ae.Code == "" {
				t.Fatalf("refusal %v is not a 4xx *Error", err)
			}
			return
		}
		if len(in.msgs) == 0 || len(in.msgs) > lim.maxMessages {
			t.Fatalf("accepted %d messages", len(in.msgs))
		}
		if in.expect != nil && *in.expect > wire.MaxOffset {
			t.Fatalf("accepted expected_offset %d", *in.expect)
		}
		batch := segmentlog.Batch{Kind: segmentlog.KindData, Term: 1, Messages: append([]segmentlog.Message(nil), in.msgs...)}
		for i := range batch.Messages {
			if !batch.Messages[i].Type.IsData() {
				t.Fatalf("accepted type %v", batch.Messages[i].Type)
			}
			batch.Messages[i].TimeTick = uint64(i + 1)
		}
		if _, err := batch.Encode(); err != nil {
			t.Fatalf("accepted messages that do not encode: %v", err)
		}
	})
}

// FuzzAppendQuery: an append's query and its after_seq key
// (system.Predecessor) never panic; a refusal is answered 400; what is
// accepted is in range, and after_seq names the producer and epoch of
// every message.
func FuzzAppendQuery(f *testing.F) {
	f.Add("after_seq=3", "p", uint64(1), uint64(4), false)
	f.Add("after_seq=3&expected_offset=2", "p", uint64(1), uint64(4), false)
	f.Add("after_seq=9007199254740992", "p", uint64(1), uint64(4), false)
	f.Add("after_seq=1&after_seq=2", "p", uint64(1), uint64(4), true)
	f.Add("after_seq=01", "", uint64(0), uint64(0), false)
	f.Fuzz(func(t *testing.T, raw, producer string, epoch, seq uint64, mixed bool) {
		refused := func(err error) {
			var ae *Error
			if !errors.As(err, &ae) || ae.status != http.StatusBadRequest || ae.Code == "" {
				t.Fatalf("refusal %v is not a 400 *Error", err)
			}
		}
		vs, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseAppendQuery(vs)
		if err != nil {
			refused(err)
			return
		}
		if (q.expect != nil && *q.expect > wire.MaxOffset) || (q.afterSeq != nil && *q.afterSeq > wire.MaxOffset) {
			t.Fatalf("accepted %q as %+v", raw, q)
		}
		if q.afterSeq == nil || q.expect != nil {
			return // after_seq with expected_offset: appendAndAnswer's 400, before any key is looked at
		}
		msgs := []segmentlog.Message{
			{VChannel: "v", Key: segmentlog.IdemKey{Producer: producer, Epoch: epoch, Seq: seq}},
			{VChannel: "v", Key: segmentlog.IdemKey{Producer: producer, Epoch: epoch, Seq: seq + 1}},
		}
		if mixed {
			msgs[1].Key.Producer += "x"
		}
		k, err := system.Predecessor(msgs, *q.afterSeq)
		if err != nil {
			refused(classify(err))
			return
		}
		if mixed || msgs[0].Key.IsZero() || k != (segmentlog.IdemKey{Producer: producer, Epoch: epoch, Seq: *q.afterSeq}) {
			t.Fatalf("after_seq %d of %+v accepted as %+v", *q.afterSeq, msgs, k)
		}
	})
}

// FuzzParsePosition: positions parse without panicking, and what parses is
// canonical: it prints back to the same string; an after: position is the
// next ID of the one it names, and that parses too.
func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"earliest", "latest", "id:0.0", "id:12.3", "timetick:470625521970970624",
		"id:9007199254740991.0", "id:-1.0", "id:01.0", "id:1", "timetick:", "id:1.4294967295", "id:+1.0",
		"after:id:8.3", "after:id:8.1048575", "after:earliest", "after:after:id:1.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pos, err := parsePosition(s)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || ae.status != http.StatusBadRequest {
				t.Fatalf("refusal %v is not a 400 *Error", err)
			}
			return
		}
		if rest, ok := strings.CutPrefix(s, "after:"); ok {
			at, err := parsePosition(rest)
			if err != nil || pos != segmentlog.AtID(segmentlog.NextID(at.ID)) {
				t.Fatalf("%q parsed as %v; %q as %v, %v", s, pos, rest, at, err)
			}
			if _, err := parsePosition(pos.String()); err != nil {
				t.Fatalf("%q parsed as %v, which does not parse: %v", s, pos, err)
			}
			return
		}
		if pos.String() != s {
			t.Fatalf("%q parsed as %v, which prints as %q", s, pos, pos.String())
		}
		if pos.Kind == segmentlog.StartAtID && pos.ID.Offset > wire.MaxOffset {
			t.Fatalf("%q: offset above MaxOffset", s)
		}
	})
}

// FuzzReadRequest drives the read-only routes with arbitrary paths and
// queries: names and positions are parsed, nothing panics, every refusal
// is a JSON 4xx, and an empty store gives no 5xx.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"/v1/pchannels/p0/messages?from=id:1.0&wait=1ms",
		"/v1/pchannels/p0/tail",
		"/v1/pchannels/../etc/lease",
		"/v1/pchannels/%2e%2e/messages?vchannel=a&vchannel=b&type=insert&max=3",
		"/v1/pchannels/a%00b/messages",
		"/v1/pchannels//messages",
		"/v1/leases",
		"/v1/pchannels",
		"/v1/broadcasts?state=pending",
		"/v1/broadcasts/b-1",
	} {
		f.Add(s)
	}
	srv, err := newServer(f, testCfg{Config: system.Config{Holder: "fuzz", Logger: testLogger(f)}, api: Config{MaxWait: 1}}, objstore.NewMemory())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close(f.Context()) })
	h := srv.Handler(AllRoles)
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(u.Path, "/") || u.Host != "" {
			return
		}
		req, err := http.NewRequest("GET", "http://cairn"+target, nil)
		if err != nil {
			return
		}
		rec := newRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e Error
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Code == "" {
				t.Fatalf("GET %s: %d with a body that is no JSON error: %q", target, rec.Code, rec.Body)
			}
		}
	})
}

// FuzzDecodeBroadcast: the broadcast body decoder and the system's check
// of the request (system.CheckBroadcast, the first thing the route's
// Broadcast does) never panic, answer every refusal with a 4xx, and what
// they accept is a task whose every copy a writer takes: valid names,
// distinct vchannels, a known ack mode, a wait within the cap, and copies
// that encode as a batch within the batch limit.
func FuzzDecodeBroadcast(f *testing.F) {
	f.Add(`{"id":"ddl-1","vchannels":["v0","v1"],"payload":"aGk=","properties":{"k":"v"},"ack":"sync","resources":["db.1"],"wait":"2s"}`)
	f.Add(`{"id":"b","vchannels":["v0"],"wait":"0s"}`)
	f.Add(`{}`)
	f.Add(`{"id":"b","vchannels":["v0","v0"]}`)
	f.Add(`{"id":"b","vchannels":["v0"],"properties":{"cairn.broadcast.deadline":"1"}}`)
	f.Add("{\"id\":\"b\",\"vchannels\":[\"v0\"],\"properties\":{\"\xff\":\"\"}}")
	const maxBatch, maxWait = 4 << 10, 20 * time.Second
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/v1/broadcasts", strings.NewReader(body))
		r.Header.Set("Content-Type", wire.ContentTypeJSON)
		in, err := decodeBroadcast(r, maxWait)
		if err == nil {
			err = system.CheckBroadcast(&in.req, maxBatch)
		}
		if err != nil {
			if ae := classify(err); ae.status < 400 || ae.status >= 500 || ae.Code == "" {
				t.Fatalf("refusal %v is answered %d %s, not a 4xx", err, ae.status, ae.Code)
			}
			return
		}
		req := in.req
		if segmentlog.ValidateName("broadcast ID", req.ID) != nil || len(req.VChannels) == 0 ||
			len(req.VChannels) > coordinator.MaxBroadcastTargets || (req.Ack != coordinator.AckFast && req.Ack != coordinator.AckSync) ||
			in.wait < 0 || in.wait > maxWait {
			t.Fatalf("accepted %+v, wait %v", req, in.wait)
		}
		for _, res := range req.Resources {
			if segmentlog.ValidateName("resource", res) != nil {
				t.Fatalf("accepted resource %q", res)
			}
		}
		seen := map[string]bool{}
		deadline := segmentlog.FormatBroadcastDeadline(time.Now().Add(time.Minute))
		for _, v := range req.VChannels {
			if seen[v] {
				t.Fatalf("accepted %s twice", v)
			}
			seen[v] = true
			// The copy as the coordinator sends it and the writer keys it.
			m := segmentlog.Message{Type: segmentlog.TypeBroadcast, VChannel: v, BroadcastID: req.ID, TimeTick: 1,
				Payload: req.Payload, Properties: map[string]string{segmentlog.BroadcastDeadlineProperty: deadline},
				Key: segmentlog.IdemKey{Producer: "@broadcast/" + req.ID + "/" + v, Epoch: 1, Seq: 1}}
			for k, val := range req.Properties {
				if k == segmentlog.BroadcastDeadlineProperty {
					t.Fatalf("accepted the reserved property")
				}
				m.Properties[k] = val
			}
			// segmentlog's messageBytes, which the writer holds to its
			// batch limit.
			size := len(m.Payload) + len(m.VChannel) + len(m.Key.Producer) + len(m.BroadcastID) + 32
			for k, val := range m.Properties {
				size += len(k) + len(val) + 2
			}
			if size > maxBatch {
				t.Fatalf("accepted a copy of %d bytes on %s", size, v)
			}
			if _, err := (&segmentlog.Batch{Kind: segmentlog.KindData, Term: 1, Messages: []segmentlog.Message{m}}).Encode(); err != nil {
				t.Fatalf("accepted a copy that does not encode: %v", err)
			}
		}
	})
}

// jsonRoutes are the write routes with a JSON body (or an optional one),
// each with its path parameter marked {}; the append route has its own
// target above.
var jsonRoutes = []struct{ method, path string }{
	{"POST", "/v1/vchannels"},
	{"POST", "/v1/vchannels/{}/txns"},
	{"POST", "/v1/txns/{}/append"},
	{"POST", "/v1/txns/{}/commit"},
	{"POST", "/v1/txns/{}/rollback"},
	{"POST", "/v1/pchannels/{}/sync"},
	{"POST", "/v1/pchannels/{}/flush"},
	{"POST", "/v1/snapshots"},
	{"POST", "/v1/snapshots/{}/restore"},
	{"DELETE", "/v1/vchannels/{}"},
	{"DELETE", "/v1/snapshots/{}"},
	{"POST", "/v1/pchannels/{}/trim"},
	{"POST", "/v1/vchannels/{}/trim"},
	{"PUT", "/v1/pchannels/{}/retention"},
	{"PUT", "/v1/vchannels/{}/retention"},
}

// FuzzJSONRequests: every JSON write route (vchannels, transactions, sync,
// flush, snapshots, restores), with any name in its path, any body and any
// Content-Type, answers a JSON error with a 4xx, or succeeds; never a 5xx,
// never a panic. The server runs on a memory store with a vchannel v0, a
// snapshot s0 and an open transaction, so that well-formed requests go deep.
func FuzzJSONRequests(f *testing.F) {
	seeds := []struct {
		route      uint8
		name, body string
		ctype      string
	}{
		{0, "", `{"name":"v1","pchannel":"p0"}`, wire.ContentTypeJSON},
		{0, "", `{"name":"../x"}`, wire.ContentTypeJSON},
		{1, "v0", `{"ttl":"1s"}`, wire.ContentTypeJSON},
		{2, "1", `{"messages":[{"payload":"aGk="}]}`, wire.ContentTypeJSON},
		{3, "18446744073709551615", ``, ""},
		{5, "p0", `{}`, wire.ContentTypeJSON},
		{6, "p0", ``, ""},
		{7, "", `{"name":"s1","vchannels":["v0"]}`, wire.ContentTypeJSON},
		{8, "s0", `{"id":"r1","targets":{"v0":"v9"}}`, wire.ContentTypeJSON},
		{9, "v0", ``, ""},
		{10, "s0", ``, ""},
		{7, "", "{\"name\":\"\xff\"}", "text/plain"},
	}
	for _, s := range seeds {
		f.Add(s.route, s.name, []byte(s.body), s.ctype)
	}
	store := objstore.NewMemory()
	srv, err := newServer(f, testCfg{Config: system.Config{Holder: "fuzz", Logger: testLogger(f), TimeTickInterval: -1, PChannels: []string{"p0", "p1"}}, api: Config{MaxWait: 1}}, store)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close(f.Context()) })
	h := srv.Handler(AllRoles)
	serve := func(method, target, ctype string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := newRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, setup := range []struct{ method, path, body string }{
		{"POST", "/v1/vchannels", `{"name":"v0","pchannel":"p0"}`},
		{"POST", "/v1/snapshots", `{"name":"s0","vchannels":["v0"]}`},
		{"POST", "/v1/vchannels/v0/txns", `{}`},
	} {
		if rec := serve(setup.method, setup.path, wire.ContentTypeJSON, []byte(setup.body)); rec.Code >= 300 {
			f.Fatalf("setup %s %s: %d %s", setup.method, setup.path, rec.Code, rec.Body)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, name string, body []byte, ctype string) {
		rt := jsonRoutes[int(route)%len(jsonRoutes)]
		target := strings.Replace(rt.path, "{}", url.PathEscape(name), 1)
		if _, err := url.ParseRequestURI(target); err != nil || strings.ContainsAny(ctype, "\r\n\x00") {
			return
		}
		rec := serve(rt.method, target, ctype, body)
		if rec.Code >= 500 {
			t.Fatalf("%s %s (%q): %d %s", rt.method, target, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e Error
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Code == "" || e.Message == "" {
				t.Fatalf("%s %s: %d with a body that is no JSON error: %q", rt.method, target, rec.Code, rec.Body)
			}
		}
	})
}
