package lambdaemu_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/lambdaemu/lambdaemutest"
	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// TestNodeSharedTorture runs SDK producers against the real node bootstrap
// in shared write mode while environments are killed mid-invocation
// (SIGKILL), frozen mid-invocation and thawed seconds later (their PUTs in
// flight land late), frozen after an invocation and never thawed, and
// reaped idle, with requests routed at random. Then it reads each pchannel
// from the store and checks the invariants: every acknowledged message is
// delivered exactly once, at its acknowledged ID and timetick (I1, I7); each
// producer's messages in Send order (I3; Window 1); timeticks strictly
// increasing and terms never decreasing along the pchannel (I4, I5).
func TestNodeSharedTorture(t *testing.T) {
	env := nodeEnv(t)
	env["CAIRN_WRITE_MODE"] = "shared"
	env["CAIRN_LOG_LEVEL"] = "warn"
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 14))
	f := lambdaemutest.Start(t, lambdaemu.Config{
		Name: "cairn-node", Bootstrap: bootstraps.Path(t, "node"), Env: env,
		Timeout: 10 * time.Second, ReservedConcurrency: 6, Policy: lambdaemu.Random(seed),
		IdleTimeout: 1500 * time.Millisecond,
	})

	type sent struct {
		producer string
		seq      uint64
		ack      client.Ack
	}
	var (
		mu    sync.Mutex
		acked = map[string]sent{} // payload → what its producer was told
		wg    sync.WaitGroup
	)
	ctx, stop := context.WithTimeout(t.Context(), 2*time.Minute)
	defer stop()
	sendUntil := time.Now().Add(8 * time.Second)
	pchannels := []string{"p0", "p1"}
	for i := range 4 {
		cl, err := client.New(f.URL(), client.WithHTTPClient(&http.Client{}),
			client.WithRetry(client.RetryPolicy{MaxAttempts: -1, MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, AttemptTimeout: 5 * time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("torture-%d", i)
		p, err := cl.Producer(pchannels[i%2], client.ProducerConfig{Name: name, VChannel: "v", MaxBatchMessages: 20, MaxPending: 100})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			var futures []*client.Future
			for n := 0; time.Now().Before(sendUntil); n++ {
				fu, err := p.SendAsync(ctx, client.Message{Payload: fmt.Appendf(nil, "%s/%d", name, n)})
				if err != nil {
					t.Errorf("%s: send %d: %v", name, n, err)
					return
				}
				futures = append(futures, fu)
				if n%10 == 9 {
					time.Sleep(5 * time.Millisecond) // pace: let the chaos hit between requests too
				}
			}
			for n, fu := range futures {
				a, err := fu.Wait(ctx)
				if err != nil {
					t.Errorf("%s: message %d: %v", name, n, err)
					continue
				}
				mu.Lock()
				acked[fmt.Sprintf("%s/%d", name, n)] = sent{name, fu.Key().Seq, a}
				mu.Unlock()
			}
			if err := p.Close(ctx); err != nil {
				t.Errorf("%s: close: %v", name, err)
			}
		})
	}

	// Chaos until the producers stop sending.
	var kills, frozenMid, forever int
	for time.Now().Before(sendUntil) {
		time.Sleep(time.Duration(150+rng.IntN(250)) * time.Millisecond)
		envs := f.Envs()
		var live []*lambdaemu.Env
		for _, e := range envs {
			if s := e.State(); s != lambdaemu.StateDead && s != lambdaemu.StateLost && s != lambdaemu.StateStopping {
				live = append(live, e)
			}
		}
		if len(live) == 0 {
			continue
		}
		e := live[rng.IntN(len(live))]
		switch rng.IntN(3) {
		case 0:
			e.Kill()
			kills++
		case 1:
			e.Freeze() // mid-invocation, if it is serving: its PUT in flight lands after the thaw
			frozenMid++
			thawAfter := time.Duration(500+rng.IntN(2500)) * time.Millisecond
			time.AfterFunc(thawAfter, e.Thaw)
		default:
			e.FreezeForever()
			forever++
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Read back from the store, through the reading rule.
	mc := miniotest.Get(t)
	store, err := mc.NewStore(t.Context(), "lambdaemu", env["CAIRN_S3_PREFIX"])
	if err != nil {
		t.Fatal(err)
	}
	delivered := map[string]sl.Delivery{}
	for _, p := range pchannels {
		var prev sl.Delivery
		lastSeq := map[string]uint64{}
		for i, d := range testkit.Scan(t, ctx, store, sl.ScannerConfig{PChannel: p}) {
			if i > 0 && (d.TimeTick <= prev.TimeTick || d.Term < prev.Term) {
				t.Errorf("I4/I5: %s: %v tick %d term %d after %v tick %d term %d", p, d.ID, d.TimeTick, d.Term, prev.ID, prev.TimeTick, prev.Term)
			}
			prev = d
			key := string(d.Payload)
			if first, dup := delivered[key]; dup {
				t.Errorf("I7: %s delivered twice, at %v and %v", key, first.ID, d.ID)
			}
			delivered[key] = d
			if last, ok := lastSeq[d.Key.Producer]; ok && d.Key.Seq <= last {
				t.Errorf("I3: producer %s: seq %d delivered after %d", d.Key.Producer, d.Key.Seq, last)
			}
			lastSeq[d.Key.Producer] = d.Key.Seq
		}
	}
	for payload, s := range acked {
		d, ok := delivered[payload]
		switch {
		case !ok:
			t.Errorf("I1: %s acked at %v, never delivered", payload, s.ack.ID)
		case d.ID.Offset != s.ack.ID.Offset || d.ID.Index != s.ack.ID.Index || d.TimeTick != s.ack.TimeTick:
			t.Errorf("I1/I7: %s acked at %v tick %d, delivered at %v tick %d", payload, s.ack.ID, s.ack.TimeTick, d.ID, d.TimeTick)
		}
	}
	st := f.Stats()
	t.Logf("%d messages acked and delivered once; chaos: %d kills, %d freezes mid-invocation (thawed 0.5–3 s later), %d frozen for ever; emulator: %d cold starts, %d invocations, %d reaps, %d throttled",
		len(acked), kills, frozenMid, forever, st.Total.ColdStarts, st.Total.Invocations, st.Total.ReapsGraceful+st.Total.ReapsKilled, st.Total.Throttles)
	if len(acked) == 0 || kills == 0 || frozenMid == 0 || forever == 0 {
		t.Errorf("the schedule did not reach every fault (acked %d, kills %d, mid-invocation freezes %d, frozen for ever %d)", len(acked), kills, frozenMid, forever)
	}
}
