package lambdaemu_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/lambdaemu/lambdaemutest"
	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/testkit"
)

// nodeEnv returns the node function's variables for a deployment on the
// shared MinIO under a prefix of the test run's own.
func nodeEnv(t *testing.T) map[string]string {
	t.Helper()
	mc := miniotest.Get(t)
	prefix := strings.ReplaceAll(t.Name(), "/", "-") + "-" + rand.Text()[:8] // -count=N runs apart
	if _, err := mc.NewStore(t.Context(), "lambdaemu", prefix); err != nil { // creates the bucket
		t.Fatal(err)
	}
	user, pass := mc.Credentials()
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     user,
		"AWS_SECRET_ACCESS_KEY": pass,
		"CAIRN_S3_ENDPOINT":     mc.Endpoint(),
		"CAIRN_S3_BUCKET":       "lambdaemu",
		"CAIRN_S3_PREFIX":       prefix,
		"CAIRN_LEASE_TTL":       "4s",
		"CAIRN_LEASE_WAIT":      "2s",
		"CAIRN_CACHE_BYTES":     strconv.Itoa(16 << 20),
		"CAIRN_LOG_LEVEL":       "info",
	}
}

func appendBody(payloads ...string) []byte {
	type msg struct {
		VChannel string `json:"vchannel"`
		Payload  string `json:"payload"`
	}
	var req struct {
		Messages []msg `json:"messages"`
	}
	for _, p := range payloads {
		req.Messages = append(req.Messages, msg{"v0", base64.StdEncoding.EncodeToString([]byte(p))})
	}
	b, _ := json.Marshal(req)
	return b
}

// sequential sends one request at a time and waits until the environment
// that served it is frozen again, so that the next one finds it idle
// (Lambda has the same race: an environment that answered is not idle
// until its runtime asks for more).
type sequential struct {
	t      *testing.T
	f      *lambdaemu.Function
	ev     *hookLog
	frozen int // freezes so far
}

func (s *sequential) do(method, path string, body []byte) reply {
	s.t.Helper()
	r := do(s.t, method, s.f.URL()+path, "application/json", body)
	s.frozen++
	s.ev.wait(s.t, "frozen", s.frozen)
	return r
}

// readAll reads every payload of a pchannel through the Function URL; it
// returns them and the environment that served the first read.
func (s *sequential) readAll(p string) ([]string, string) {
	t := s.t
	t.Helper()
	var out []string
	from, env := "earliest", ""
	for {
		r := s.do("GET", "/v1/pchannels/"+p+"/messages?from="+from+"&max=1000", nil)
		want(t, "read", r, 200)
		if env == "" {
			env = r.env
		}
		var rr struct {
			Messages []struct {
				Payload []byte `json:"payload"`
			} `json:"messages"`
			Next string `json:"next"`
		}
		if err := json.Unmarshal([]byte(r.body), &rr); err != nil {
			t.Fatalf("read %q: %v", r.body, err)
		}
		for _, m := range rr.Messages {
			out = append(out, string(m.Payload))
		}
		if len(rr.Messages) == 0 {
			return out, env
		}
		from = rr.Next
	}
}

// TestNodeExample is the emulator at work on Cairn's node function: two
// environments, an append through the Function URL with plain net/http,
// the environment frozen between requests, a request routed to the other
// environment, and a graceful reap that releases the lease.
func TestNodeExample(t *testing.T) {
	ev := newEvents()
	f := lambdaemutest.Start(t, lambdaemu.Config{
		Name: "cairn-node", Bootstrap: bootstraps.Path(t, "node"), Env: nodeEnv(t),
		Timeout: 30 * time.Second, ReservedConcurrency: 2, Policy: lambdaemu.RoundRobin(), Hooks: ev.hooks(),
	})

	resp, err := http.Post(f.URL()+"/v1/pchannels/p0/append", "application/json", strings.NewReader(string(appendBody("one"))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Lambdaemu-Env") != "1" {
		t.Fatalf("append: %s from env %q", resp.Status, resp.Header.Get("X-Lambdaemu-Env"))
	}
	env1 := ev.wait(t, "frozen", 1)
	if s := procState(t, env1.PID()); s != 'T' {
		t.Fatalf("env 1 between requests in state %c, want T", s)
	}

	// A long poll keeps env 1 busy, so the next request starts env 2.
	poll := goGet(f.URL() + "/v1/pchannels/p0/messages?from=latest&wait=2s")
	ev.wait(t, "invoked", 2)
	r := get(t, f.URL()+"/healthz")
	want(t, "healthz on a second environment", r, 200)
	if r.env != "2" {
		t.Fatalf("healthz served by env %s while env 1 was busy", r.env)
	}
	want(t, "long poll", <-poll, 200)
	ev.wait(t, "frozen", 3)
	for _, e := range f.Envs() {
		if s := procState(t, e.PID()); s != 'T' {
			t.Fatalf("%v idle in state %c", e, s)
		}
	}

	// Round robin: env 1 served last, so env 2 reads what env 1 wrote.
	seq := &sequential{t: t, f: f, ev: ev, frozen: 3}
	got, served := seq.readAll("p0")
	if !slices.Equal(got, []string{"one"}) || served != "2" {
		t.Fatalf("read %q from env %s", got, served)
	}

	env1.Reap()
	// The log pipe may lag the exit.
	testkit.EventuallyNil(t, 5*time.Second, "env 1 shuts down on SIGTERM", func() error {
		if log := env1.Log(); !strings.Contains(log, "shutdown complete") {
			return fmt.Errorf("log:\n%s", log)
		}
		return nil
	})
	s := f.Stats()
	if s.Total.ColdStarts != 2 || s.Total.ReapsGraceful != 1 || s.Envs[0].State != lambdaemu.StateDead || s.Total.Thaws < 2 {
		t.Fatalf("stats %+v", s)
	}
	t.Logf("node: cold starts %d (init %v in all), invocations %d, freezes %d, thaws %d",
		s.Total.ColdStarts, s.Total.InitTime.Round(time.Millisecond), s.Total.Invocations, s.Total.Freezes, s.Total.Thaws)
}

// TestNodeAppendsSpread: one sequential producer whose appends Lambda
// spreads over two warm node environments. In exclusive write mode the one
// not holding the lease waits for it (CAIRN_LEASE_WAIT) and answers 503
// lease_held while the holder sits frozen with a live lease; in shared
// write mode (the template's) every append is acknowledged, whichever
// environment serves it. Every answer is 200 or 503 lease_held (in
// exclusive mode also 503 unavailable), and every acknowledged append
// reads back once, in order.
func TestNodeAppendsSpread(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy lambdaemu.Policy
		mode   string // CAIRN_WRITE_MODE
	}{
		{"exclusive round robin", lambdaemu.RoundRobin(), "exclusive"},
		{"shared most recent", lambdaemu.MostRecent(), "shared"},
		{"shared round robin", lambdaemu.RoundRobin(), "shared"},
		{"shared random seed 3", lambdaemu.Random(3), "shared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := newEvents()
			env := nodeEnv(t)
			env["CAIRN_WRITE_MODE"] = tc.mode
			f := lambdaemutest.Start(t, lambdaemu.Config{
				Name: "cairn-node", Bootstrap: bootstraps.Path(t, "node"), Env: env,
				Timeout: 30 * time.Second, ReservedConcurrency: 2, Policy: tc.policy, Hooks: ev.hooks(),
			})
			// Warm two environments: a long poll on p1 holds the first
			// while the second starts.
			want(t, "warm-up append", do(t, "POST", f.URL()+"/v1/pchannels/p1/append", "application/json", appendBody("warm")), 200)
			ev.wait(t, "frozen", 1)
			poll := goGet(f.URL() + "/v1/pchannels/p1/messages?from=latest&wait=1s")
			ev.wait(t, "invoked", 2)
			want(t, "warm-up", get(t, f.URL()+"/healthz"), 200)
			want(t, "long poll", <-poll, 200)
			ev.wait(t, "frozen", 3)

			const n = 12
			seq := &sequential{t: t, f: f, ev: ev, frozen: 3}
			var acked []string
			byEnv := map[string][2]int{} // env → [200s, 503s]
			var ok, busy []time.Duration
			for i := range n {
				payload := fmt.Sprintf("m%02d", i)
				begin := time.Now()
				r := seq.do("POST", "/v1/pchannels/p0/append", appendBody(payload))
				d := time.Since(begin)
				c := byEnv[r.env]
				switch {
				case r.status == 200:
					acked = append(acked, payload)
					ok = append(ok, d)
					c[0]++
				case r.status == 503 && strings.Contains(r.body, "lease_held"):
					busy = append(busy, d)
					c[1]++
				case r.status == 503 && tc.mode == "exclusive" && strings.Contains(r.body, `"unavailable"`):
					// Seen once in CI, under load: the waiting
					// environment's reads of the lease record (the frozen
					// holder may have frozen with a renewal in flight)
					// timed out 16 times in a row. Exclusive mode's
					// failure either way; nothing was written.
					busy = append(busy, d)
					c[1]++
				default:
					t.Fatalf("append %d: %d %s", i, r.status, r.body)
				}
				byEnv[r.env] = c
			}
			got, _ := seq.readAll("p0")
			if !slices.Equal(got, acked) {
				t.Fatalf("read back %q, acknowledged %q", got, acked)
			}
			if tc.mode == "shared" && len(acked) != n {
				// The point of shared terms: no environment waits for a
				// frozen one's lease.
				t.Fatalf("shared write mode: %d of %d appends acknowledged; by env [200s 503s] %v", len(acked), n, byEnv)
			}
			s := f.Stats()
			t.Logf("%s over 2 warm node environments, %d sequential appends: %d acknowledged, %d × 503 lease_held; by env [200s 503s] %v; mean 200 %v, mean 503 %v; freezes %d thaws %d",
				tc.name, n, len(ok), len(busy), byEnv, mean(ok), mean(busy), s.Total.Freezes, s.Total.Thaws)
		})
	}
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return (sum / time.Duration(len(ds))).Round(time.Millisecond)
}

// TestNodeThawAfterLeaseExpiry measures what a lone node environment
// does when Lambda thaws it for a request after it sat frozen past its
// lease's TTL + margin, with nobody else around: Lambda hands the
// invocation over in the same instant as the process runs again, so the
// request may find the lease expired before the renewal goroutine gets to
// renew it. It asserts that the append succeeds and reads back; the term
// (kept, or a new one with a re-fence) is a figure.
func TestNodeThawAfterLeaseExpiry(t *testing.T) {
	ev := newEvents()
	f := lambdaemutest.Start(t, lambdaemu.Config{
		Name: "cairn-node", Bootstrap: bootstraps.Path(t, "node"), Env: nodeEnv(t),
		Timeout: 30 * time.Second, ReservedConcurrency: 1, Hooks: ev.hooks(),
	})
	seq := &sequential{t: t, f: f, ev: ev}
	term := func(r reply) int {
		var a struct {
			Term int `json:"term"`
		}
		if err := json.Unmarshal([]byte(r.body), &a); err != nil {
			t.Fatalf("append answer %q: %v", r.body, err)
		}
		return a.Term
	}
	r := seq.do("POST", "/v1/pchannels/p0/append", appendBody("before"))
	want(t, "append", r, 200)
	before := term(r)
	time.Sleep(6 * time.Second) // frozen past TTL 4 s + margin 1 s
	begin := time.Now()
	r = seq.do("POST", "/v1/pchannels/p0/append", appendBody("after"))
	took := time.Since(begin)
	want(t, "append after the thaw", r, 200)
	got, _ := seq.readAll("p0")
	if !slices.Equal(got, []string{"before", "after"}) {
		t.Fatalf("read back %q", got)
	}
	t.Logf("lone node thawed after 6 s frozen (lease TTL 4 s): term %d → %d (%s), the append took %v",
		before, term(r), map[bool]string{true: "kept", false: "writer replaced and re-fenced"}[before == term(r)], took.Round(time.Millisecond))
}
