package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
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

// idleBudget is the request budget at rest (#16) of an idle `cairn serve`
// with four pchannels, per minute and per component, from the schedule
// docs/operations.md ("Cost model") derives: the node heartbeats every
// 3 s (20 PUTs) and polls at its backed-off 16 s (3.75 LISTs); the
// balancer, settled, runs a round every 16 s (two LISTs and a GET of the
// node's session: 11.25); the broadcast loop LISTs once a minute (and
// collects every ten); GC and retention run every 5 min (GC's six LISTs:
// checkpoints twice, segments, dedup state, snapshots, restores); a parked
// pchannel's flusher looks at the store every 5 min (two GETs: 1.6 for
// four), its compactor every 10 (nothing flushed: 0.4), its writer is
// closed (no renewals). The targets: ≤ 60 in all, ≤ 2 per idle pchannel.
var idleBudget = map[string]float64{
	"node":      24,
	"balancer":  12,
	"broadcast": 1.2,
	"gc":        1.5,
	"retention": 0.5,
	"flusher":   2,
	"compactor": 0.5,
	"lease":     0,
	"writer":    0,
}

const (
	idleTotalBudget      = 60.0 // a minute: ≤ 1 a second
	idlePChannelBudget   = 2.0  // a minute, per idle held pchannel
	idleMeasuredMinutes  = 30
	idleSettleMinutes    = 3 // IdleRelease (1 min) parks the writers; the loops back off
	idlePChannelsOfServe = 4
)

// TestIdleStoreRequests is the request budget at rest (#16): an idle
// `cairn serve` system with the four default pchannels (all held by its
// node, with their flushers and compactors) is left alone for
// idleMeasuredMinutes of synctest's clock (a bubble: every loop's tickers
// and timers run on it, so the count is the schedule's, whatever the
// machine's speed), and its store requests are counted per component from
// cairn_store_requests_total and held to idleBudget per simulated minute.
func TestIdleStoreRequests(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		cfg := system.Config{Holder: defaultNodeID(), PChannels: []string{"p0", "p1", "p2", "p3"},
			Logger: slog.New(slog.DiscardHandler)}
		store, err := objstore.NewFS(dir)
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
			_ = srv.Close(ctx)
		}()
		// Settled: the node holds every pchannel (a flusher each) and the
		// balancer has recorded them assigned; the pool parks the idle
		// writers.
		held := func() (n, assigned int) {
			sys.holder.mu.Lock()
			n = len(sys.holder.running)
			sys.holder.mu.Unlock()
			if as, err := sys.balancer.Assignments(ctx); err == nil {
				for _, a := range as {
					if a.State == coordinator.PChannelAssigned {
						assigned++
					}
				}
			}
			return n, assigned
		}
		testkit.EventuallyNil(t, time.Minute, "the node holds the 4 pchannels, all assigned", func() error {
			if n, assigned := held(); n != 4 || assigned != 4 {
				return fmt.Errorf("the node holds %d of 4 pchannels, %d assigned", n, assigned)
			}
			return nil
		})
		time.Sleep(idleSettleMinutes * time.Minute) // synctest's clock: the loops run, no real time passes
		synctest.Wait()
		for _, p := range cfg.PChannels {
			if _, parked := sys0.Pool().ParkedTail(p); !parked {
				t.Fatalf("%s is not parked after %d idle minutes", p, idleSettleMinutes)
			}
		}
		before := storeRequests(t, srv)
		time.Sleep(idleMeasuredMinutes * time.Minute)
		synctest.Wait()
		after := storeRequests(t, srv)
		// Still held and assigned: idling moved nothing.
		if n, assigned := held(); n != 4 || assigned != 4 {
			t.Errorf("after the idle period the node runs %d flushers and %d pchannels are assigned, want 4 and 4", n, assigned)
		}

		var keys []string
		for k := range after {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		perMin := func(k string) float64 { return (after[k] - before[k]) / idleMeasuredMinutes }
		total := 0.0
		var report strings.Builder
		for _, k := range keys {
			n := perMin(k)
			if n == 0 {
				continue
			}
			if !strings.Contains(k, "/") {
				total += n
			}
			report.WriteString("\n  " + k + ": " + strconv.FormatFloat(n, 'f', 2, 64) + "/min")
		}
		t.Logf("idle store requests over %d simulated minutes, 4 parked pchannels: %.2f/min in all (%.3f/s)%s",
			idleMeasuredMinutes, total, total/60, report.String())
		for _, k := range keys {
			if strings.Contains(k, "/") {
				continue
			}
			budget, ok := idleBudget[k]
			if !ok {
				t.Errorf("component %s makes %.2f requests a minute at rest and has no budget", k, perMin(k))
			} else if n := perMin(k); n > budget {
				t.Errorf("component %s makes %.2f requests a minute at rest, over its budget of %.2f", k, n, budget)
			}
		}
		if total > idleTotalBudget {
			t.Errorf("an idle system makes %.2f store requests a minute, over the budget of %.0f", total, idleTotalBudget)
		}
		perPChannel := (perMin("lease") + perMin("writer") + perMin("flusher") + perMin("compactor")) / idlePChannelsOfServe
		if perPChannel > idlePChannelBudget {
			t.Errorf("an idle held pchannel makes %.2f store requests a minute, over the budget of %.0f", perPChannel, idlePChannelBudget)
		}
	})
}
