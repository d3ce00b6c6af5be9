package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// TestHostileRequests sends requests that must be refused: each gets a
// JSON error with the documented status, nothing reaches the store as a
// write, and the server stays healthy.
func TestHostileRequests(t *testing.T) {
	var writes atomic.Int64
	store := objstore.Observe(objstore.NewMemory(), func(r objstore.Request) {
		switch r.Op {
		case objstore.OpPutIfAbsent, objstore.OpPutIfMatch, objstore.OpPut, objstore.OpDelete:
			writes.Add(1)
		}
	})
	cfg := testConfig(t)
	cfg.api.MaxBodyBytes = 8 << 10
	cfg.api.MaxAppendMessages = 10
	cfg.MaxBatchBytes = 4 << 10
	ts := newTestServer(t, cfg, store)

	okBatch, err := (&segmentlog.Batch{Kind: segmentlog.KindData, Term: 1, Messages: []segmentlog.Message{
		{Type: segmentlog.TypeData, VChannel: "v0", TimeTick: 1, Payload: []byte("payload")},
	}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	fence, err := (&segmentlog.Batch{Kind: segmentlog.KindFence, Term: 1}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	tooMany := wire.AppendRequest{}
	for range 11 {
		tooMany.Messages = append(tooMany.Messages, wire.MessageIn{VChannel: "v0"})
	}
	tooManyJSON, _ := json.Marshal(tooMany)
	const js = wire.ContentTypeJSON
	const good = `{"messages":[{"vchannel":"v0","payload":"aGk="}]}`
	var names []string
	for i := range 1025 {
		names = append(names, fmt.Sprintf("%q", strconv.FormatInt(int64(i), 36)))
	}
	tooManyTargets := `{"id":"b","vchannels":[` + strings.Join(names, ",") + `]}`
	reservedBatch, err := (&segmentlog.Batch{Kind: segmentlog.KindData, Term: 1, Messages: []segmentlog.Message{
		{Type: segmentlog.TypeData, VChannel: "v0", TimeTick: 1, Properties: map[string]string{"cairn.flag": "x"}},
	}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("n", 300<<10) // a name, position or key far over any limit
	longBody := strings.Repeat("n", 7<<10)
	bigCopy := `{"id":"b","vchannels":["v0"],"payload":"` + base64.StdEncoding.EncodeToString(make([]byte, 5000)) + `"}`

	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
	}{
		{"oversized body", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"v0","payload":"` + strings.Repeat("A", 12<<10) + `"}]}`, 413, wire.CodeTooLarge},
		{"malformed JSON", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":`, 400, wire.CodeMalformed},
		{"JSON array", "POST", "/v1/pchannels/p0/append", js, `[1,2]`, 400, wire.CodeMalformed},
		{"trailing data", "POST", "/v1/pchannels/p0/append", js, good + `{}`, 400, wire.CodeMalformed},
		{"unknown field", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"v0","colour":"red"}]}`, 400, wire.CodeMalformed},
		{"payload not base64", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"v0","payload":"***"}]}`, 400, wire.CodeMalformed},
		{"invalid UTF-8", "POST", "/v1/pchannels/p0/append", js, "{\"messages\":[{\"vchannel\":\"v0\",\"properties\":{\"k\":\"\xff\xfe\"}}]}", 400, wire.CodeMalformed},
		{"no messages", "POST", "/v1/pchannels/p0/append", js, `{"messages":[]}`, 400, wire.CodeInvalid},
		{"null body", "POST", "/v1/pchannels/p0/append", js, `null`, 400, wire.CodeInvalid},
		{"empty body", "POST", "/v1/pchannels/p0/append", js, ``, 400, wire.CodeMalformed},
		{"too many messages", "POST", "/v1/pchannels/p0/append", js, string(tooManyJSON), 413, wire.CodeTooLarge},
		{"control message type", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"v0","type":"drop_vchannel"}]}`, 400, wire.CodeInvalid},
		{"unknown message type", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"v0","type":"nope"}]}`, 400, wire.CodeInvalid},
		{"bad vchannel", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"../etc"}]}`, 400, wire.CodeInvalidName},
		{"empty vchannel", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"payload":"aGk="}]}`, 400, wire.CodeInvalidName},
		{"seq without producer", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"v0","key":{"producer":"","epoch":1,"seq":2}}]}`, 400, wire.CodeInvalid},
		{"empty property key", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"v0","properties":{"":"v"}}]}`, 400, wire.CodeInvalid},
		{"negative seq", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"v0","key":{"producer":"p","epoch":1,"seq":-2}}]}`, 400, wire.CodeMalformed},
		{"negative expected_offset", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"v0"}],"expected_offset":-1}`, 400, wire.CodeMalformed},
		{"huge expected_offset", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"v0"}],"expected_offset":9007199254740992}`, 400, wire.CodeMalformed},
		{"overflowing expected_offset", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"v0"}],"expected_offset":18446744073709551616}`, 400, wire.CodeMalformed},
		{"expected_offset twice", "POST", "/v1/pchannels/p0/append?expected_offset=0", js, `{"messages":[{"vchannel":"v0"}],"expected_offset":0}`, 400, wire.CodeMalformed},
		{"bad expected_offset query", "POST", "/v1/pchannels/p0/append?expected_offset=-1", js, good, 400, wire.CodeMalformed},
		{"unknown append query", "POST", "/v1/pchannels/p0/append?force=1", js, good, 400, wire.CodeMalformed},
		{"wrong content type", "POST", "/v1/pchannels/p0/append", "text/plain", good, 415, wire.CodeUnsupportedType},
		{"no content type", "POST", "/v1/pchannels/p0/append", "", good, 415, wire.CodeUnsupportedType},
		{"latin-1 JSON", "POST", "/v1/pchannels/p0/append", js + "; charset=latin1", good, 415, wire.CodeUnsupportedType},
		{"batch with parameters", "POST", "/v1/pchannels/p0/append", wire.ContentTypeBatch + "; v=2", string(okBatch), 415, wire.CodeUnsupportedType},
		{"truncated batch", "POST", "/v1/pchannels/p0/append", wire.ContentTypeBatch, string(okBatch[:len(okBatch)-5]), 400, wire.CodeMalformed},
		{"garbage batch", "POST", "/v1/pchannels/p0/append", wire.ContentTypeBatch, "not a batch at all, clearly", 400, wire.CodeMalformed},
		{"JSON sent as batch", "POST", "/v1/pchannels/p0/append", wire.ContentTypeBatch, good, 400, wire.CodeMalformed},
		{"fence batch", "POST", "/v1/pchannels/p0/append", wire.ContentTypeBatch, string(fence), 400, wire.CodeInvalid},
		{"dot-dot in the path", "POST", "/v1/pchannels/../p0/append", js, good, 400, wire.CodeInvalidName},
		{"escaped traversal", "POST", "/v1/pchannels/..%2F..%2Fetc/append", js, good, 400, wire.CodeInvalidName},
		{"escaped dot-dot", "GET", "/v1/pchannels/%2e%2e/tail", "", "", 400, wire.CodeInvalidName},
		{"double slash", "GET", "/v1/pchannels//tail", "", "", 400, wire.CodeInvalidName},
		{"NUL in a name", "GET", "/v1/pchannels/p%000/messages", "", "", 400, wire.CodeInvalidName},
		{"long name", "GET", "/v1/pchannels/" + strings.Repeat("p", 200) + "/messages", "", "", 400, wire.CodeInvalidName},
		{"unicode name", "GET", "/v1/pchannels/p%C3%A9/messages", "", "", 400, wire.CodeInvalidName},
		{"unknown pchannel read", "GET", "/v1/pchannels/nowhere/messages?wait=5s", "", "", 404, wire.CodeUnknownPChannel},
		{"unknown pchannel tail", "GET", "/v1/pchannels/nowhere/tail", "", "", 404, wire.CodeUnknownPChannel},
		{"unknown pchannel sync", "POST", "/v1/pchannels/nowhere/sync", "", "", 404, wire.CodeUnknownPChannel},
		// Only the configured pchannels (p0…p3) exist: an append to any
		// other name writes nothing and creates nothing (#16).
		{"unknown pchannel append", "POST", "/v1/pchannels/p4/append", js, good, 404, wire.CodeUnknownPChannel},
		{"unknown pchannel binary append", "POST", "/v1/pchannels/typo/append", wire.ContentTypeBatch, string(okBatch), 404, wire.CodeUnknownPChannel},
		{"unknown pchannel flush", "POST", "/v1/pchannels/p4/flush", "", "", 404, wire.CodeUnknownPChannel},
		{"negative offset", "GET", "/v1/pchannels/p0/messages?from=id:-1.0", "", "", 400, wire.CodeMalformed},
		{"huge offset", "GET", "/v1/pchannels/p0/messages?from=id:99999999999999999999999.0", "", "", 400, wire.CodeMalformed},
		{"offset past 2^53", "GET", "/v1/pchannels/p0/messages?from=id:9007199254740992.0", "", "", 400, wire.CodeMalformed},
		{"huge index", "GET", "/v1/pchannels/p0/messages?from=id:1.4294967296", "", "", 400, wire.CodeMalformed},
		{"leading zero", "GET", "/v1/pchannels/p0/messages?from=id:01.0", "", "", 400, wire.CodeMalformed},
		{"unknown position", "GET", "/v1/pchannels/p0/messages?from=yesterday", "", "", 400, wire.CodeMalformed},
		{"negative timetick", "GET", "/v1/pchannels/p0/messages?from=timetick:-5", "", "", 400, wire.CodeMalformed},
		{"negative wait", "GET", "/v1/pchannels/p0/messages?wait=-1s", "", "", 400, wire.CodeMalformed},
		{"max zero", "GET", "/v1/pchannels/p0/messages?max=0", "", "", 400, wire.CodeMalformed},
		{"from twice", "GET", "/v1/pchannels/p0/messages?from=earliest&from=latest", "", "", 400, wire.CodeMalformed},
		{"unknown read query", "GET", "/v1/pchannels/p0/messages?limit=5", "", "", 400, wire.CodeMalformed},
		{"bad vchannel filter", "GET", "/v1/pchannels/p0/messages?vchannel=..", "", "", 400, wire.CodeInvalidName},
		{"bad type filter", "GET", "/v1/pchannels/p0/messages?type=everything", "", "", 400, wire.CodeMalformed},
		{"sync with a body", "POST", "/v1/pchannels/p0/sync", js, `{"force":true}`, 400, wire.CodeMalformed},
		{"wrong method", "DELETE", "/v1/pchannels/p0/append", "", "", 405, wire.CodeMethodNotAllowed},
		{"unknown route", "GET", "/v2/pchannels", "", "", 404, wire.CodeNotFound},
		{"tail query", "GET", "/v1/pchannels/p0/tail?x=1", "", "", 400, wire.CodeMalformed},
		{"broadcast malformed", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":[`, 400, wire.CodeMalformed},
		{"broadcast empty body", "POST", "/v1/broadcasts", js, ``, 400, wire.CodeMalformed},
		{"broadcast unknown field", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":["v0"],"colour":"red"}`, 400, wire.CodeMalformed},
		{"broadcast trailing data", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":["v0"]}{}`, 400, wire.CodeMalformed},
		{"broadcast payload not base64", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":["v0"],"payload":"***"}`, 400, wire.CodeMalformed},
		{"broadcast wrong content type", "POST", "/v1/broadcasts", "text/plain", `{"id":"b","vchannels":["v0"]}`, 415, wire.CodeUnsupportedType},
		{"broadcast query", "POST", "/v1/broadcasts?wait=1s", js, `{"id":"b","vchannels":["v0"]}`, 400, wire.CodeMalformed},
		{"broadcast no ID", "POST", "/v1/broadcasts", js, `{"vchannels":["v0"]}`, 400, wire.CodeInvalidName},
		{"broadcast bad ID", "POST", "/v1/broadcasts", js, `{"id":"../b","vchannels":["v0"]}`, 400, wire.CodeInvalidName},
		{"broadcast no vchannels", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":[]}`, 400, wire.CodeInvalid},
		{"broadcast null vchannels", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":null}`, 400, wire.CodeInvalid},
		{"broadcast too many vchannels", "POST", "/v1/broadcasts", js, tooManyTargets, 400, wire.CodeInvalid},
		{"broadcast vchannel twice", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":["v0","v0"]}`, 400, wire.CodeInvalid},
		{"broadcast bad vchannel", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":["v0",".."]}`, 400, wire.CodeInvalidName},
		{"broadcast bad ack", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":["v0"],"ack":"eventually"}`, 400, wire.CodeInvalid},
		{"broadcast reserved property", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":["v0"],"properties":{"cairn.broadcast.deadline":"1"}}`, 400, wire.CodeInvalid},
		{"broadcast empty property key", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":["v0"],"properties":{"":"x"}}`, 400, wire.CodeInvalid},
		{"broadcast bad resource", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":["v0"],"resources":["a/b"]}`, 400, wire.CodeInvalidName},
		{"broadcast bad wait", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":["v0"],"wait":"soon"}`, 400, wire.CodeMalformed},
		{"broadcast negative wait", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":["v0"],"wait":"-1s"}`, 400, wire.CodeMalformed},
		{"broadcast copy over the batch limit", "POST", "/v1/broadcasts", js, bigCopy, 413, wire.CodeTooLarge},
		{"broadcast unknown vchannel", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":["v0"]}`, 404, wire.CodeUnknownVChannel},
		{"broadcast list bad state", "GET", "/v1/broadcasts?state=lost", "", "", 400, wire.CodeMalformed},
		{"broadcast describe unknown", "GET", "/v1/broadcasts/b", "", "", 404, wire.CodeUnknownBroadcast},
		{"broadcast describe escaped traversal", "GET", "/v1/broadcasts/..%2Fx", "", "", 400, wire.CodeInvalidName},
		{"broadcast wrong method", "DELETE", "/v1/broadcasts/b", "", "", 405, wire.CodeMethodNotAllowed},
		// Property keys starting with cairn. are Cairn's, on every write route.
		{"reserved property on append", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"v0","properties":{"cairn.broadcast.deadline":"1"}}]}`, 400, wire.CodeInvalid},
		{"reserved prefix on append", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"v0","properties":{"cairn.anything":"1"}}]}`, 400, wire.CodeInvalid},
		{"reserved prefix in a binary batch", "POST", "/v1/pchannels/p0/append", wire.ContentTypeBatch, string(reservedBatch), 400, wire.CodeInvalid},
		{"reserved prefix on a vchannel append", "POST", "/v1/vchannels/v0/append", js, `{"messages":[{"properties":{"cairn.anything":"1"}}]}`, 400, wire.CodeInvalid},
		{"broadcast reserved prefix", "POST", "/v1/broadcasts", js, `{"id":"b","vchannels":["v0"],"properties":{"cairn.anything":"1"}}`, 400, wire.CodeInvalid},
		// A message quotes at most a prefix of what the client sent (below,
		// every answer is checked to be short).
		{"long vchannel name in the path", "GET", "/v1/vchannels/" + long, "", "", 400, wire.CodeInvalidName},
		{"long pchannel name in the path", "GET", "/v1/pchannels/" + long + "/tail", "", "", 400, wire.CodeInvalidName},
		{"long vchannel name in the query", "GET", "/v1/pchannels/p0/messages?vchannel=" + long, "", "", 400, wire.CodeInvalidName},
		{"long position", "GET", "/v1/pchannels/p0/messages?from=id:" + long, "", "", 400, wire.CodeMalformed},
		{"long query parameter", "GET", "/v1/pchannels/p0/tail?" + long + "=1", "", "", 400, wire.CodeMalformed},
		{"long vchannel name in the body", "POST", "/v1/pchannels/p0/append", js, `{"messages":[{"vchannel":"` + longBody + `"}]}`, 400, wire.CodeInvalidName},
		{"long unknown field", "POST", "/v1/pchannels/p0/append", js, `{"` + longBody + `":1}`, 400, wire.CodeMalformed},
		{"long broadcast ID", "POST", "/v1/broadcasts", js, `{"id":"` + longBody + `","vchannels":["v0"]}`, 400, wire.CodeInvalidName},
		{"long snapshot name", "POST", "/v1/snapshots", js, `{"name":"` + longBody + `","vchannels":["v0"]}`, 400, wire.CodeInvalidName},
		{"long content type", "POST", "/v1/pchannels/p0/append", longBody, good, 415, wire.CodeUnsupportedType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ts.do(c.method, c.path, c.ctype, []byte(c.body))
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if code := r.errorCode(t); code != c.code {
				t.Fatalf("code %q, want %q: %s", code, c.code, r.body)
			}
			if len(r.body) > 1024 {
				t.Fatalf("a %d-byte error answer: %.300s…", len(r.body), r.body)
			}
		})
	}
	if n := writes.Load(); n != 0 {
		t.Fatalf("hostile requests wrote %d objects", n)
	}
	if r := ts.get("/healthz"); r.status != http.StatusOK {
		t.Fatalf("healthz after the hostile requests: %d", r.status)
	}
	ts.mustAppend("p0", msgs("v0", "still fine"))
	if n := writes.Load(); n == 0 {
		t.Fatal("the write counter counts nothing")
	}
}

// TestBearerToken: with a token set, every route but GET and HEAD /healthz
// needs it.
func TestBearerToken(t *testing.T) {
	cfg := testConfig(t)
	cfg.api.Token = "s3cret-token"
	srv, err := newServer(t, cfg, objstore.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(t.Context())
	h := srv.Handler(AllRoles)
	for _, c := range []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/healthz", "", 200},
		{"HEAD", "/healthz", "", 200},
		{"POST", "/healthz", "", 401},
		{"HEAD", "/metrics", "", 401},
		{"GET", "/metrics", "", 401},
		{"GET", "/v1/leases", "", 401},
		{"GET", "/v1/leases", "Bearer wrong", 401},
		{"GET", "/v1/leases", "Bearer s3cret-token-and-more", 401},
		{"GET", "/v1/leases", "Basic s3cret-token", 401},
		{"GET", "/v1/leases", "Bearer s3cret-token", 200},
		{"GET", "/v1/leases", "bearer s3cret-token", 200},
	} {
		req := mustRequest(t, c.method, c.path, "", "")
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		rec := newRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s %s with %q: %d, want %d", c.method, c.path, c.auth, rec.Code, c.want)
		}
		if rec.Code == 401 && c.method != "HEAD" && (!strings.Contains(rec.Body.String(), `"code":"unauthorized"`) || strings.Contains(rec.Body.String(), "s3cret")) {
			t.Errorf("401 body %s", rec.Body)
		}
	}
}
