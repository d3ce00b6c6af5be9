package lambdaemu_test

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/lambdaemu/lambdaemutest"
)

// storeCounter is a reverse proxy in front of MinIO that counts the S3
// requests the functions send.
type storeCounter struct {
	n   atomic.Int64
	url string
}

func newStoreCounter(t *testing.T, endpoint string) *storeCounter {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c := &storeCounter{}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.n.Add(1)
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c.url = "http://" + ln.Addr().String()
	return c
}

// TestNodeIdleMakesNoStoreRequests: in shared write mode (the template's)
// a node environment does nothing between invocations that costs a store
// request: after its appends, a freeze longer than every timer a writer
// could hold (timeticks every second, lease renewals), a thaw for an
// invocation that needs no store (GET /healthz) and the SIGTERM shutdown
// send nothing. Exclusive write mode, whose writer holds a lease, renews it
// at the thaw: the same schedule counts requests there, which shows the
// check can fail.
func TestNodeIdleMakesNoStoreRequests(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		wantQuiet bool
	}{{"shared", true}, {"exclusive", false}} {
		t.Run(tc.mode, func(t *testing.T) {
			env := nodeEnv(t)
			store := newStoreCounter(t, env["CAIRN_S3_ENDPOINT"])
			env["CAIRN_S3_ENDPOINT"] = store.url
			env["CAIRN_WRITE_MODE"] = tc.mode
			ev := newEvents()
			f := lambdaemutest.Start(t, lambdaemu.Config{
				Name: "cairn-node", Bootstrap: bootstraps.Path(t, "node"), Env: env,
				Timeout: 30 * time.Second, ReservedConcurrency: 1, Policy: lambdaemu.MostRecent(), Hooks: ev.hooks(),
			})
			seq := &sequential{t: t, f: f, ev: ev}
			for _, p := range []string{"one", "two", "three"} {
				want(t, "append", seq.do("POST", "/v1/pchannels/p0/append", appendBody(p)), 200)
			}
			busy := store.n.Load()
			if busy == 0 {
				t.Fatal("the appends sent no store request through the counter: the check would prove nothing")
			}
			// Frozen past the writer's timers: a timetick is due 1 s after
			// the last append, a renew of a 4 s lease after about 1 s.
			// (Wall time passing over a stopped process: nothing to wait for.)
			time.Sleep(2500 * time.Millisecond)
			want(t, "healthz after the freeze", seq.do("GET", "/healthz", nil), 200)
			e := f.Envs()[0]
			e.Reap()
			ev.wait(t, "exited", 1)
			idle := store.n.Load() - busy
			t.Logf("%s: %d store requests for 3 appends, %d idle (thaw, healthz, shutdown)", tc.mode, busy, idle)
			switch {
			case tc.wantQuiet && idle != 0:
				t.Fatalf("%s write mode: %d store requests while idle, want none:\n%s", tc.mode, idle, e.Log())
			case !tc.wantQuiet && idle == 0:
				t.Fatalf("%s write mode sent no request while idle: its lease renewal no longer shows, so the shared case proves nothing", tc.mode)
			}
		})
	}
}
