package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
)

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// metricValue reads one sample of /metrics ("" if absent).
func (ts *testServer) metricValue(sample string) string {
	ts.t.Helper()
	for _, line := range strings.Split(string(ts.get("/metrics").body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return v
		}
	}
	return ""
}

// TestClientGoneMidBody: a client that sends half a body and hangs up is
// the client's fault: counted under code client_closed, never as a 5xx,
// and logged below warning level.
func TestClientGoneMidBody(t *testing.T) {
	logs := &syncBuffer{}
	cfg := testConfig(t)
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := newTestServer(t, cfg, objstore.NewMemory())
	host := strings.TrimPrefix(ts.url, "http://")

	for _, path := range []string{"/v1/pchannels/p0/append", "/v1/vchannels"} {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		body := `{"messages":[{"vchannel":"v0"`
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n%s", path, host, body)
		conn.(*net.TCPConn).CloseWrite() // the client is done sending: the body ends 970 bytes early
		answer, _ := io.ReadAll(conn)
		conn.Close()
		if !bytes.HasPrefix(answer, []byte("HTTP/1.1 400 ")) || !bytes.Contains(answer, []byte(`"code":"malformed"`)) {
			t.Fatalf("%s: answer to a cut body: %q", path, answer)
		}
	}
	for _, route := range []string{"POST /v1/pchannels/{p}/append", "POST /v1/vchannels"} {
		sample := fmt.Sprintf(`cairn_http_requests_total{code=%q,route=%q}`, MetricClientClosed, route)
		testkit.Eventually(t, 10*time.Second, sample, func() bool { return ts.metricValue(sample) == "1" })
	}
	metrics := string(ts.get("/metrics").body)
	if strings.Contains(metrics, `code="500"`) || strings.Contains(metrics, `code="400"`) {
		t.Fatalf("a cut body counted as an answer status:\n%s", metrics)
	}
	if l := logs.String(); strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
		t.Fatalf("a cut body logged as a server problem:\n%s", l)
	}
	if r := ts.get("/healthz"); r.status != http.StatusOK {
		t.Fatalf("healthz: %d", r.status)
	}
}

// newServedTestServer serves store as `cairn serve` does: HTTPServer on a
// Listener over a real loopback socket, with cfg's connection limits.
func newServedTestServer(t *testing.T, cfg testCfg, store objstore.Store) *testServer {
	t.Helper()
	srv, err := newServer(t, cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer(srv.Handler(AllRoles), nil)
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(srv.Listener(ln)) }()
	t.Cleanup(func() {
		hs.Close()
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	})
	return &testServer{t: t, srv: srv, url: "http://" + ln.Addr().String()}
}

// dial opens a raw connection to ts; it closes at cleanup.
func (ts *testServer) dial(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readUntilClosed reads conn until the server closes it, failing if that
// takes over 10 s (the limits under test are far shorter).
func readUntilClosed(t *testing.T, conn net.Conn, what string) []byte {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(conn)
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil // closed with bytes of ours unread: a reset, after the answer
	}
	if err != nil {
		t.Fatalf("%s: the server did not close the connection: %v (read %q)", what, err, b)
	}
	return b
}

// TestConnectionTimeouts: on a real socket, a body sent a byte at a time
// is cut at the body timeout (408), an idle keep-alive connection and a
// silent one are closed, and long polls (a read's and a broadcast's wait,
// longer than every timeout) are still answered.
func TestConnectionTimeouts(t *testing.T) {
	cfg := testConfig(t)
	cfg.api.HeaderTimeout = time.Second
	cfg.api.BodyTimeout = time.Second
	cfg.api.WriteTimeout = time.Second
	cfg.api.IdleTimeout = time.Second
	ts := newServedTestServer(t, cfg, objstore.NewMemory())
	host := strings.TrimPrefix(ts.url, "http://")

	t.Run("slow body", func(t *testing.T) {
		conn := ts.dial(t)
		fmt.Fprintf(conn, "POST /v1/pchannels/p0/append HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n", host)
		stop := make(chan struct{})
		defer close(stop)
		go func() { // a byte every 100 ms: each read is quick, the body never ends
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
		answer := readUntilClosed(t, conn, "slow body")
		if !bytes.HasPrefix(answer, []byte("HTTP/1.1 408 ")) || !bytes.Contains(answer, []byte(`"code":"request_timeout"`)) {
			t.Fatalf("answer to a slow body: %q", answer)
		}
	})
	t.Run("slow body of a refused request", func(t *testing.T) {
		conn := ts.dial(t)
		fmt.Fprintf(conn, "POST /nowhere HTTP/1.1\r\nHost: %s\r\nContent-Length: 10000\r\n\r\n", host)
		if answer := readUntilClosed(t, conn, "refused slow body"); !bytes.HasPrefix(answer, []byte("HTTP/1.1 404 ")) {
			t.Fatalf("answer: %q", answer)
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		conn := ts.dial(t)
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", host)
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || res.Close {
			t.Fatalf("healthz: %d, close %v", res.StatusCode, res.Close)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
			t.Fatalf("idle connection: read %q, %v; want closed", b, err)
		}
	})
	t.Run("silent connection", func(t *testing.T) {
		if b := readUntilClosed(t, ts.dial(t), "silent"); len(b) != 0 {
			t.Fatalf("silent connection got %q", b)
		}
	})
	t.Run("long polls", func(t *testing.T) {
		ts.mustAppend("p0", msgs("v0", "one"))
		rr := ts.mustRead("/v1/pchannels/p0/messages?from=latest&wait=3s")
		if len(rr.Messages) != 0 {
			t.Fatalf("long poll at the tail: %+v", rr)
		}
		ts.createVChannel("b0", "p1")
		// A sync ack waits for a flush that never comes here: pending after
		// the whole wait, with the body read long before.
		r := ts.postJSON("/v1/broadcasts", wire.BroadcastRequest{ID: "slow", VChannels: []string{"b0"}, Ack: "sync", Wait: "3s"})
		if r.status != http.StatusAccepted {
			t.Fatalf("broadcast waiting 3 s: %d %s", r.status, r.body)
		}
	})
}

// TestConnectionCap: past Config.MaxConns open connections, a new one is
// not served until another closes.
func TestConnectionCap(t *testing.T) {
	cfg := testConfig(t)
	cfg.api.MaxConns = 2
	ts := newServedTestServer(t, cfg, objstore.NewMemory())
	host := strings.TrimPrefix(ts.url, "http://")
	ask := func(conn net.Conn) *bufio.Reader {
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", host)
		return bufio.NewReader(conn)
	}
	answered := func(br *bufio.Reader) {
		t.Helper()
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("healthz: %d", res.StatusCode)
		}
	}
	first, second := ts.dial(t), ts.dial(t)
	answered(ask(first))
	answered(ask(second))
	third := ts.dial(t)
	br := ask(third)
	// Never served while two connections are open: the read can only time
	// out (a pass does not depend on how long it waits).
	third.SetReadDeadline(time.Now().Add(time.Second))
	if b, err := br.Peek(1); err == nil {
		t.Fatalf("a third connection was served past MaxConns 2: %q", b)
	}
	first.Close()
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	answered(br)
}

// TestNetHTTPErrorsAsJSON: the answers net/http writes before any handler
// runs come as JSON errors too, on a real socket.
func TestNetHTTPErrorsAsJSON(t *testing.T) {
	ts := newServedTestServer(t, testConfig(t), objstore.NewMemory())
	host := strings.TrimPrefix(ts.url, "http://")
	huge := strings.Repeat("x", http.DefaultMaxHeaderBytes+8192)
	for _, c := range []struct {
		name, request string
		status        int
		code          string
	}{
		{"header over the limit", "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nX-Big: " + huge + "\r\n\r\n", 431, wire.CodeHeadersTooLarge},
		{"bad header name", "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nBad Name: x\r\n\r\n", 400, wire.CodeMalformed},
		{"no Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, wire.CodeMalformed},
		{"bad request line", "GET\r\n\r\n", 400, wire.CodeMalformed},
		{"unknown transfer encoding", "POST /v1/vchannels HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: rot13\r\n\r\n", 501, wire.CodeNotImplemented},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := ts.dial(t)
			go conn.Write([]byte(c.request)) // the server may answer and close before it has read it all
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			r := response{status: res.StatusCode, header: res.Header, body: body}
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, body)
			}
			if code := r.errorCode(t); code != c.code {
				t.Fatalf("code %q, want %q: %s", code, c.code, body)
			}
		})
	}
	sample := `cairn_http_requests_total{code="431",route="unparsed"}`
	if v := ts.metricValue(sample); v != "1" {
		t.Fatalf("%s = %q, want 1", sample, v)
	}
}

// TestServedOversizedBody: over the capped, rewriting listener a body
// over the limit still gets its 413, not a reset.
func TestServedOversizedBody(t *testing.T) {
	cfg := testConfig(t)
	cfg.api.MaxBodyBytes = 64 << 10
	ts := newServedTestServer(t, cfg, objstore.NewMemory())
	body := `{"messages":[{"vchannel":"v0","payload":"` + strings.Repeat("A", 4<<20) + `"}]}`
	r := ts.do("POST", "/v1/pchannels/p0/append", wire.ContentTypeJSON, []byte(body))
	if r.status != http.StatusRequestEntityTooLarge || r.errorCode(t) != wire.CodeTooLarge {
		t.Fatalf("oversized body: %d %s", r.status, r.body)
	}
}
