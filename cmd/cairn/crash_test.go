package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/testkit"
)

var crashSeed = flag.Uint64("crash.seed", 0, "seed of TestServeCrash's kill times and send pacing (0: time-based)")

// crashKills is how many times TestServeCrash kills the server.
const crashKills = 5

// crashProducers append during TestServeCrash: two pchannels, two
// producers each, one of them with Window 4: every producer's messages
// land in Send order at any window (client.ProducerConfig).
var crashProducers = []struct {
	name, pchannel string
	window         int
}{
	{"crash-a", "p0", 1},
	{"crash-b", "p0", 1},
	{"crash-c", "p1", 1},
	{"crash-d", "p1", 4},
}

// TestServeCrash kills the real `cairn serve --store s3` process with
// SIGKILL at random points while SDK producers append to it, restarts it on
// a new port each time, and after the last restart reads every pchannel
// from the start with a Consumer: every acknowledged message is delivered
// exactly once at its acknowledged ID, each producer's messages in Send
// order (the Window 4 one's too), IDs and timeticks strictly increasing, terms never
// decreasing, and nothing that failed for certain is delivered
// (RELIABILITY.md, "A writer process dies mid-append"). A restarted
// process takes the killed one's leases over at start (it is a dead
// incarnation on this host), which the test checks after every kill that
// followed an ack. -crash.seed replays the kill times (not the
// interleavings).
func TestServeCrash(t *testing.T) {
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("crash: seed %d (replay the kill times with -crash.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0xc4a54))

	bin := buildCairn(t)
	mc := miniotest.Get(t)
	user, pass := mc.Credentials()
	env := childEnv(map[string]string{
		"CAIRN_S3_ENDPOINT":     mc.Endpoint(),
		"CAIRN_S3_BUCKET":       "crash",
		"CAIRN_S3_PREFIX":       fmt.Sprintf("%s-%d", t.Name(), seed),
		"AWS_ACCESS_KEY_ID":     user,
		"AWS_SECRET_ACCESS_KEY": pass,
		"AWS_REGION":            "us-east-1",
		// margin 500 ms, renew every 500 ms: a restarted process takes a
		// killed one's pchannels over about 2.5 s after its last renew.
		"CAIRN_LEASE_TTL":   "2s",
		"CAIRN_CACHE_BYTES": fmt.Sprint(32 << 20),
	})
	// --flush-max-age 1s: kills also land during flushes, and the final
	// read goes through segments, then the WAL.
	args := []string{"serve", "--addr", "127.0.0.1:0", "--store", "s3", "--create-bucket", "--flush-max-age", "1s"}

	var route follower
	procs := []*child{startChild(t, bin, args, env)}
	route.set(procs[0].addr)
	c := route.client(t)

	h := &crashHistory{byPayload: map[string]*crashRecord{}}
	ctx, stopSending := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { stopSending(); wg.Wait() }() // a failed test leaves no producer behind
	for i, spec := range crashProducers {
		pace := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Go(func() { h.produce(ctx, t, c, spec.name, spec.pchannel, spec.window, pace) })
	}

	// Odd kills come 200–1500 ms after the running process acked its first
	// message, among appends in flight, once it has shown that it took the
	// pchannels over. Even kills come 0–3.5 s after the process started,
	// whatever it acked: while it waits for the dead one's lease, acquires,
	// recovers or places its fence.
	reclaimed := 0
	for k := 1; ; k++ {
		srv := procs[len(procs)-1]
		var delay time.Duration
		what := ""
		if k%2 == 1 || k > crashKills {
			took := h.awaitAck(t, srv, k)
			if k > 1 && (k-1)%2 == 1 {
				// The process before was killed holding leases (it had
				// acked): this one took them back at start instead of
				// waiting them out (docs/protocol.md, Acquire 4). The line
				// is logged just after the writer opened, so an ack may
				// come first.
				testkit.Eventually(t, 5*time.Second, fmt.Sprintf("process %d takes back the pchannels of process %d, killed with their leases", k, k-1), func() bool {
					return strings.Contains(srv.out.String(), "took a dead incarnation's pchannel back")
				})
				for _, line := range strings.Split(srv.out.String(), "\n") {
					if strings.Contains(line, "took a dead incarnation's pchannel back") {
						t.Logf("crash: process %d: %s", k, line)
					}
				}
				reclaimed++
			}
			if k > crashKills {
				t.Logf("crash: process %d acked its first message %v after it started; no more kills", k, took.Round(time.Millisecond))
				since := h.acked.Load()
				testkit.Eventually(t, 30*time.Second, fmt.Sprintf("process %d acks 100 more messages", k), func() bool { return h.acked.Load() >= since+100 })
				break
			}
			delay = 200*time.Millisecond + time.Duration(rng.Int64N(int64(1300*time.Millisecond)))
			what = fmt.Sprintf("acked its first message %v after it started, killed %v later", took.Round(time.Millisecond), delay.Round(time.Millisecond))
		} else {
			delay = time.Duration(rng.Int64N(int64(3500 * time.Millisecond)))
			what = fmt.Sprintf("killed %v after it started, in its takeover window", delay.Round(time.Millisecond))
		}
		time.Sleep(delay) // the experiment: a kill at a random moment of the process's life, not a wait for a goroutine
		srv.kill(t)
		if h.ackedAt.Load() <= srv.started.UnixNano() {
			what += ", having acked nothing"
		}
		t.Logf("crash %d: process %d %s; %d messages acked so far", k, k, what, h.acked.Load())
		next := startChild(t, bin, args, env)
		procs = append(procs, next)
		route.set(next.addr)
	}
	stopSending()
	wg.Wait() // every producer closed: each message acked or failed
	if reclaimed == 0 {
		t.Errorf("no restart followed a kill after an ack: the takeover at start was never checked")
	}

	// Read back through the last process.
	delivered := map[string][]client.Delivery{}
	for _, p := range []string{"p0", "p1"} {
		delivered[p] = readAll(t, c, p)
	}
	last := procs[len(procs)-1]
	if err := last.stop(t); err != nil {
		t.Errorf("the last process did not stop cleanly after SIGTERM: %v", err)
	}
	for i, p := range procs {
		if bad := p.badOutput(); bad != "" {
			t.Errorf("process %d (pid %d) went wrong on its own:\n%s", i+1, p.cmd.Process.Pid, bad)
		}
	}
	h.check(t, delivered, crashKills)
}

// crashRecord is one message sent and what became of it.
type crashRecord struct {
	pchannel string
	key      client.Key
	f        *client.Future
	ack      client.Ack
	err      error // nil once acked
}

// crashHistory is every message the producers sent. Safe for concurrent
// use.
type crashHistory struct {
	acked     atomic.Int64 // messages acked so far
	ackedAt   atomic.Int64 // UnixNano of the latest ack
	mu        sync.Mutex
	byPayload map[string]*crashRecord
	sent      []*crashRecord
	notes     []string // producers stopped or closed with an error
}

// produce sends messages from one producer name, at a random pace of up to
// 4 ms between sends, until ctx ends, then closes the producer (flushing
// everything sent). A producer that stops at a failed batch is rebuilt
// under the same name — a new epoch — and the failure is recorded.
func (h *crashHistory) produce(ctx context.Context, t *testing.T, c *client.Client, name, pchannel string, window int, pace *rand.Rand) {
	build := func() *client.Producer {
		p, err := c.Producer(pchannel, client.ProducerConfig{Name: name, VChannel: "v0", Window: window})
		if err != nil {
			t.Error(err)
		}
		return p
	}
	p := build()
	if p == nil {
		return
	}
	// Futures complete in Send order: one goroutine waits for them in
	// turn and counts the acks as they come.
	futures := make(chan *crashRecord, 1<<16)
	var waiter sync.WaitGroup
	waiter.Go(func() {
		for r := range futures {
			if _, err := r.f.Wait(context.Background()); err == nil {
				h.acked.Add(1)
				h.ackedAt.Store(time.Now().UnixNano())
			}
		}
	})
	defer func() {
		wait := 90 * time.Second
		if t.Failed() {
			wait = 5 * time.Second // the server may be gone
		}
		closeCtx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := p.Close(closeCtx); err != nil {
			h.note("%s epoch %d closed with: %v", name, p.Epoch(), err)
		}
		close(futures)
		waiter.Wait()
	}()
	for n := 0; ctx.Err() == nil; n++ {
		payload := fmt.Sprintf("%s#%d|%s", name, n, strings.Repeat("x", pace.IntN(256)))
		f, err := p.SendAsync(ctx, client.Message{Payload: []byte(payload)})
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return
		case errors.Is(err, client.ErrStopped):
			h.note("%s epoch %d stopped: %v", name, p.Epoch(), err)
			closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = p.Close(closeCtx)
			cancel()
			if p = build(); p == nil {
				return
			}
			continue
		case err != nil:
			t.Errorf("%s: send: %v", name, err)
			return
		}
		r := &crashRecord{pchannel: pchannel, key: f.Key(), f: f}
		h.mu.Lock()
		h.byPayload[payload] = r
		h.sent = append(h.sent, r)
		h.mu.Unlock()
		futures <- r
		time.Sleep(time.Duration(pace.IntN(4000)) * time.Microsecond) // the workload's pace: sends spread over time, not a wait
	}
}

func (h *crashHistory) note(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notes = append(h.notes, fmt.Sprintf(format, args...))
}

// awaitAck waits until a message is acked after srv, the n-th process,
// started, and returns how long after its start that was. It fails t if
// none is within 60 s: the process did not take the pchannels over.
func (h *crashHistory) awaitAck(t *testing.T, srv *child, n int) time.Duration {
	t.Helper()
	testkit.Eventually(t, time.Until(srv.started.Add(60*time.Second)), fmt.Sprintf("process %d acks a message within 60 s of starting", n), func() bool {
		return h.ackedAt.Load() > srv.started.UnixNano()
	})
	return time.Unix(0, h.ackedAt.Load()).Sub(srv.started)
}

// readAll reads pchannel from the earliest message to the tail with a
// Consumer.
func readAll(t *testing.T, c *client.Client, pchannel string) []client.Delivery {
	t.Helper()
	co, err := c.Consumer(pchannel, client.ConsumerConfig{From: client.Earliest, Wait: -1, Max: 5000})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out []client.Delivery
	for {
		ds, err := co.Poll(ctx, 0) // Wait < 0: an empty poll is the tail
		if err != nil {
			t.Fatalf("read %s after %d messages: %v", pchannel, len(out), err)
		}
		if len(ds) == 0 {
			return out
		}
		out = append(out, ds...)
	}
}

// check holds the history against what the Consumers delivered and logs
// the figures.
func (h *crashHistory) check(t *testing.T, delivered map[string][]client.Delivery, kills int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var acked, dupAcks, unknown, failed int
	failures := map[string]int{}
	for _, r := range h.sent {
		select {
		case <-r.f.Done():
		default:
			t.Fatalf("%+v: not done after its producer closed", r.key)
		}
		r.ack, r.err = r.f.Wait(context.Background())
		switch {
		case r.err == nil:
			acked++
			if r.ack.Duplicate {
				dupAcks++
			}
		case errors.Is(r.err, client.ErrOutcomeUnknown):
			unknown++
			failures[r.err.Error()]++
		default:
			failed++
			failures[r.err.Error()]++
		}
	}

	var violations []string
	violate := func(format string, args ...any) {
		if len(violations) < 30 {
			violations = append(violations, fmt.Sprintf(format, args...))
		}
	}
	seen := map[client.Key]client.MessageID{}
	maxTerm := map[string]uint64{}
	total := 0
	for p, ds := range delivered {
		type producerEpoch struct {
			name  string
			epoch uint64
		}
		lastSeq := map[producerEpoch]uint64{}
		for i, d := range ds {
			total++
			maxTerm[p] = max(maxTerm[p], d.Term)
			if i > 0 {
				prev := ds[i-1]
				if !prev.ID.Less(d.ID) {
					violate("I3 %s: ID %v after %v", p, d.ID, prev.ID)
				}
				if d.TimeTick <= prev.TimeTick {
					violate("I4 %s: timetick %d at %v after %d", p, d.TimeTick, d.ID, prev.TimeTick)
				}
				if d.Term < prev.Term {
					violate("I5 %s: term %d at %v after %d", p, d.Term, d.ID, prev.Term)
				}
			}
			r := h.byPayload[string(d.Payload)]
			switch {
			case d.Key == nil || r == nil:
				violate("I2 %s: %v was never sent (key %+v, payload %.40q)", p, d.ID, d.Key, d.Payload)
				continue
			case *d.Key != r.key || r.pchannel != p || d.VChannel != "v0":
				violate("%s: %v carries key %+v on %s/%s; it was sent with key %+v to %s/v0", p, d.ID, *d.Key, p, d.VChannel, r.key, r.pchannel)
			}
			if first, dup := seen[r.key]; dup {
				violate("I1/I7 %s: key %+v delivered at %v and again at %v", p, r.key, first, d.ID)
			}
			seen[r.key] = d.ID
			switch {
			case r.err == nil && r.ack.ID != d.ID:
				violate("I1 %s: key %+v acked at %v, delivered at %v", p, r.key, r.ack.ID, d.ID)
			case r.err != nil && !errors.Is(r.err, client.ErrOutcomeUnknown):
				violate("I2 %s: key %+v failed (%v) yet is delivered at %v", p, r.key, r.err, d.ID)
			}
			pe := producerEpoch{r.key.Producer, r.key.Epoch}
			if last, ok := lastSeq[pe]; ok && r.key.Seq <= last {
				violate("I3 %s: %s epoch %d seq %d delivered after seq %d", p, r.key.Producer, r.key.Epoch, r.key.Seq, last)
			}
			lastSeq[pe] = r.key.Seq
		}
	}
	lost := 0
	for _, r := range h.sent {
		if _, ok := seen[r.key]; r.err == nil && !ok {
			lost++
			violate("I1: key %+v acked at %v (term %d) is never delivered", r.key, r.ack.ID, r.ack.Term)
		}
	}

	t.Logf("crash: %d crashes survived, %d messages sent, %d acked (%d of them answered as duplicates of an earlier attempt), %d delivered, %d lost, %d outcome-unknown, %d failed; last terms %v",
		kills, len(h.sent), acked, dupAcks, total, lost, unknown, failed, maxTerm)
	for _, n := range h.notes {
		t.Logf("crash: producer %s", n)
	}
	for _, v := range violations {
		t.Error(v)
	}
	// With retries that never give up and a server that comes back, no
	// message may end without an ack: report each way one did.
	for e, n := range failures {
		t.Errorf("%d messages ended without an ack: %s", n, e)
	}
	if acked == 0 || total == 0 {
		t.Errorf("nothing was acked (%d) or delivered (%d): the test tested nothing", acked, total)
	}
}
