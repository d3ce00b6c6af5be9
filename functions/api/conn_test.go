package api

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
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

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
		waitFor(t, sample, func() bool { return ts.metricValue(sample) == "1" })
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
