package api

import (
	"context"
	"io"
	"regexp"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/infra/objstore"
)

// TestScannerStartupDelay: while the startup delay is on, appends are
// acknowledged (write-only recovery) and reads deliver nothing — a read
// waits at most its own wait and answers paused — unless they ask
// ignore_pause=true; the metrics show the pause and the time reads spent
// held back. Once the delay ends, a waiting read delivers.
func TestScannerStartupDelay(t *testing.T) {
	cfg := testConfig(t)
	cfg.ScannerStartupDelay = 1500 * time.Millisecond
	started := time.Now()
	store := &getCounter{Store: objstore.NewMemory()}
	ts := newTestServer(t, cfg, store)
	ts.createVChannel("v0", "p0")
	mustOK(t, "append during the pause", ts.postJSON("/v1/vchannels/v0/append", msgs("", "a", "b")), nil)
	ts.get("/v1/vchannels/v0/messages?wait=1ms") // the vchannel's record is cached from here on

	for _, path := range []string{"/v1/pchannels/p0/messages?wait=100ms", "/v1/vchannels/v0/messages?wait=100ms", "/v1/vchannels/v0/messages?wait=100ms&from=earliest"} {
		gets := store.gets.Load()
		var rr wire.ReadResponse
		mustOK(t, "paused read", ts.get(path), &rr)
		if !rr.Paused || len(rr.Messages) != 0 || rr.Next == "" {
			t.Fatalf("%s during the pause: %+v", path, rr)
		}
		if n := store.gets.Load() - gets; n != 0 {
			t.Fatalf("%s during the pause read the store %d times; a held read touches nothing", path, n)
		}
	}
	var rr wire.ReadResponse
	mustOK(t, "read ignoring the pause", ts.get("/v1/vchannels/v0/messages?ignore_pause=true"), &rr)
	if rr.Paused || !slices.Equal(payloads(rr.Messages), []string{"a", "b"}) {
		t.Fatalf("read ignoring the pause: %+v", rr)
	}
	wantError(t, "bad ignore_pause", ts.get("/v1/vchannels/v0/messages?ignore_pause=maybe"), 400, wire.CodeMalformed)

	metrics := string(ts.get("/metrics").body)
	if !regexp.MustCompile(`(?m)^cairn_scanner_pause_active 1$`).MatchString(metrics) {
		t.Errorf("metrics do not show the pause:\n%s", grepLines(metrics, "cairn_scanner_pause"))
	}
	m := regexp.MustCompile(`(?m)^cairn_scanner_pause_wait_seconds_total (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no pause wait metric:\n%s", grepLines(metrics, "cairn_scanner_pause"))
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v < 0.15 {
		t.Errorf("reads held back %v s in all, want at least the two 100ms waits", v)
	}

	// A read that waits past the end of the delay delivers.
	mustOK(t, "read across the end of the pause", ts.get("/v1/vchannels/v0/messages?wait=10s"), &rr)
	if rr.Paused || !slices.Equal(payloads(rr.Messages), []string{"a", "b"}) {
		t.Fatalf("read across the end of the pause: %+v", rr)
	}
	if since := time.Since(started); since < cfg.ScannerStartupDelay {
		t.Fatalf("delivered %v after start, within the %v delay", since, cfg.ScannerStartupDelay)
	}
	metrics = string(ts.get("/metrics").body)
	if !regexp.MustCompile(`(?m)^cairn_scanner_pause_active 0$`).MatchString(metrics) {
		t.Errorf("metrics still show the pause:\n%s", grepLines(metrics, "cairn_scanner_pause"))
	}
}

func grepLines(s, sub string) string {
	var out []byte
	for _, l := range regexp.MustCompile(`(?m)^.*`+regexp.QuoteMeta(sub)+`.*$`).FindAllString(s, -1) {
		out = append(out, l...)
		out = append(out, '\n')
	}
	return string(out)
}

// getCounter counts the reads that reach a store.
type getCounter struct {
	objstore.Store
	gets atomic.Int64
}

func (s *getCounter) Get(ctx context.Context, key string) (objstore.Object, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, key)
}

func (s *getCounter) GetIfNoneMatch(ctx context.Context, key, etag string) (objstore.Object, error) {
	s.gets.Add(1)
	return s.Store.GetIfNoneMatch(ctx, key, etag)
}

func (s *getCounter) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	s.gets.Add(1)
	return s.Store.GetRange(ctx, key, off, n)
}
