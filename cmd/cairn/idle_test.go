package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
)

var storeRequestLine = regexp.MustCompile(`^cairn_store_requests_total\{component="([a-z]+)",op="([a-z_]+)",result="[a-z_]+"\} ([0-9.e+]+)$`)

// storeRequests scrapes srv's /metrics: store requests by component and by
// component/op.
func storeRequests(t *testing.T, srv *api.Server) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.Handler(api.AllRoles).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		m := storeRequestLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("metrics line %q", sc.Text())
		}
		out[m[1]] += v
		out[m[1]+"/"+m[2]] += v
	}
	return out
}

// TestIdleStoreRequests is the request budget at rest (#16): an idle
// `cairn serve` system with the four default pchannels (all held by its
// node, with their writers, flushers and compactors) is left alone for a
// measured period, and its store requests are counted per component from
// cairn_store_requests_total. The figures are logged; the test fails if the
// total passes the budget below, which is what the code achieves today, not
// yet the issue's target of ≤ 1 a second (see docs/operations.md, "Cost
// model"). Requests come from tickers, so a slower machine only makes fewer.
func TestIdleStoreRequests(t *testing.T) {
	const period = 6 * time.Second
	ctx := context.Background()
	cfg := system.Config{Holder: defaultNodeID(), PChannels: []string{"p0", "p1", "p2", "p3"}, TimeTickInterval: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	store, err := objstore.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sys0, err := system.New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{}, sys0)
	if err != nil {
		t.Fatal(err)
	}
	opts := serveOptions{}.withDefaults()
	opts.system.compactMinRefs = defaultCompactMinRefs
	sys, err := newLocal(sys0, sys0.Config().Coordinator(), opts.system, cfg.Holder, "http://127.0.0.1:1", cfg.Logger)
	if err != nil {
		t.Fatal(err)
	}
	sysCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); sys.run(sysCtx) }()
	defer func() {
		stop()
		<-done
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		_ = srv.Close(cctx)
	}()
	// Settled: the node holds every pchannel (a writer and a flusher each)
	// and the balancer has recorded them assigned.
	deadline := time.Now().Add(60 * time.Second)
	for {
		sys.holder.mu.Lock()
		n := len(sys.holder.running)
		sys.holder.mu.Unlock()
		assigned := 0
		if as, err := sys.balancer.Assignments(ctx); err == nil {
			for _, a := range as {
				if a.State == coordinator.PChannelAssigned {
					assigned++
				}
			}
		}
		if n == 4 && assigned == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node holds %d of 4 pchannels, %d assigned, after 60 s", n, assigned)
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := storeRequests(t, srv)
	start := time.Now()
	time.Sleep(period)
	after := storeRequests(t, srv)
	elapsed := time.Since(start).Seconds()

	var keys []string
	for k := range after {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	total := 0.0
	var report strings.Builder
	for _, k := range keys {
		n := after[k] - before[k]
		if n == 0 {
			continue
		}
		if !strings.Contains(k, "/") {
			total += n
		}
		report.WriteString("\n  " + k + ": " + strconv.FormatFloat(n/elapsed, 'f', 2, 64) + "/s")
	}
	t.Logf("idle store requests over %.1f s, 4 held pchannels: %.2f/s in all%s", elapsed, total/elapsed, report.String())
	// The budget today (about 6.7 a second): each held pchannel's writer
	// renews its lease every 3 s (a GET and a CAS: 2.7/s for four), the
	// balancer runs a round every second (2.3/s: it lists sessions and
	// assignments), the node heartbeats and polls its assignments (1.5/s); an idle flusher sends
	// nothing (it takes the tail from the writer in the same process).
	// Slack for the edges of the period.
	const budget = 8.0
	if rate := total / elapsed; rate > budget {
		t.Errorf("an idle system makes %.2f store requests a second, over its budget of %.0f", rate, budget)
	}
}
