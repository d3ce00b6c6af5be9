package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
)

// testLogger discards below warnings.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// testCfg is both configurations of a test server: the system's
// (embedded) and the HTTP side's.
type testCfg struct {
	system.Config
	api Config
}

// testConfig is a small, fast configuration.
func testConfig(t testing.TB) testCfg {
	return testCfg{Config: system.Config{
		Holder:     "test-" + t.Name(),
		LeaseTTL:   4 * time.Second,
		LeaseWait:  300 * time.Millisecond,
		CacheBytes: 4 << 20,
		Logger:     testLogger(t),
		// No timetick batches unless a test asks: offsets stay exact even
		// when a loaded machine pauses a test for a second.
		TimeTickInterval: -1,
	}}
}

// newServer builds the system of cfg over store and its HTTP API; the
// caller closes it.
func newServer(t testing.TB, cfg testCfg, store objstore.Store) (*Server, error) {
	t.Helper()
	sys, err := system.New(cfg.Config, store)
	if err != nil {
		return nil, err
	}
	return New(cfg.api, sys)
}

// testServer serves store over HTTP with every role; it closes at cleanup.
type testServer struct {
	t   testing.TB
	srv *Server
	url string
}

func newTestServer(t testing.TB, cfg testCfg, store objstore.Store) *testServer {
	t.Helper()
	srv, err := newServer(t, cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler(AllRoles))
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	})
	return &testServer{t: t, srv: srv, url: hs.URL}
}

// response is one answer, body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorCode decodes a JSON error body, failing the test if it is not one.
func (r response) errorCode(t testing.TB) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error answer %d has Content-Type %q, body %q", r.status, ct, r.body)
	}
	var e struct{ Code, Message string }
	r.decode(t, &e)
	if e.Code == "" || e.Message == "" {
		t.Fatalf("error answer %d without code or message: %s", r.status, r.body)
	}
	return e.Code
}

func (ts *testServer) do(method, path, contentType string, body []byte) response {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, bytes.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (ts *testServer) get(path string) response { return ts.do("GET", path, "", nil) }

func (ts *testServer) postJSON(path string, v any) response {
	ts.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		ts.t.Fatal(err)
	}
	return ts.do("POST", path, wire.ContentTypeJSON, b)
}

// mustAppend appends msgs to p and returns the answer, failing on non-200.
func (ts *testServer) mustAppend(p string, req wire.AppendRequest) wire.AppendResponse {
	ts.t.Helper()
	r := ts.postJSON("/v1/pchannels/"+p+"/append", req)
	if r.status != http.StatusOK {
		ts.t.Fatalf("append to %s: %d %s", p, r.status, r.body)
	}
	var ar wire.AppendResponse
	r.decode(ts.t, &ar)
	if len(ar.Acks) != len(req.Messages) {
		ts.t.Fatalf("append to %s: %d acks for %d messages", p, len(ar.Acks), len(req.Messages))
	}
	return ar
}

func (ts *testServer) mustRead(path string) wire.ReadResponse {
	ts.t.Helper()
	r := ts.get(path)
	if r.status != http.StatusOK {
		ts.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	var rr wire.ReadResponse
	r.decode(ts.t, &rr)
	return rr
}

func msgs(vchannel string, payloads ...string) wire.AppendRequest {
	var req wire.AppendRequest
	for _, p := range payloads {
		req.Messages = append(req.Messages, wire.MessageIn{VChannel: vchannel, Payload: []byte(p)})
	}
	return req
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func mustRequest(t testing.TB, method, path, contentType, body string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

// awaitWaiting waits until n reads of the server wait at the tail (their
// scanner met the tail and holds a waiter slot): a test that appends after
// it knows the read was parked, not yet to arrive.
func (ts *testServer) awaitWaiting(n int) {
	ts.t.Helper()
	testkit.Eventually(ts.t, 10*time.Second, fmt.Sprintf("%d reads waiting at the tail", n), func() bool { return len(ts.srv.waiters) >= n })
}
