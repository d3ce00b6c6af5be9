package lambdaemu_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/lambdaemu/lambdaemutest"
	"github.com/cairnlog/cairn/infra/testkit"
)

// TestFreezeBetweenInvocations checks that an environment is stopped
// (state T) as soon as it answered and is continued for the next request,
// which it serves warm.
func TestFreezeBetweenInvocations(t *testing.T) {
	ev := newEvents()
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), Hooks: ev.hooks()})
	r1 := get(t, f.URL()+"/")
	want(t, "first", r1, 200)
	e := ev.wait(t, "frozen", 1)
	if s := procState(t, e.PID()); s != 'T' {
		t.Fatalf("idle environment in state %c, want T (stopped)", s)
	}
	if e.State() != lambdaemu.StateIdle {
		t.Fatalf("state %v", e.State())
	}
	r2 := get(t, f.URL()+"/")
	want(t, "second", r2, 200)
	if r2.header.Get("X-Pid") != r1.header.Get("X-Pid") || r2.header.Get("X-Invocation") != "2" {
		t.Fatalf("second request served by pid %s invocation %s, first by %s", r2.header.Get("X-Pid"), r2.header.Get("X-Invocation"), r1.header.Get("X-Pid"))
	}
	ev.wait(t, "frozen", 2)
	s := f.Stats()
	if s.Total.ColdStarts != 1 || s.Total.Invocations != 2 || s.Total.Freezes != 2 || s.Total.Thaws != 1 || s.Total.InitTime <= 0 {
		t.Fatalf("stats %+v", s.Total)
	}
	if len(s.Envs) != 1 || s.Envs[0].PID != e.PID() || s.Envs[0].State != lambdaemu.StateIdle {
		t.Fatalf("env stats %+v", s.Envs)
	}
}

// TestFreezeWaitsForExtensions checks that an environment is frozen only
// once its extension subscribed to INVOKE asked for the next event, after
// its post-invoke work.
func TestFreezeWaitsForExtensions(t *testing.T) {
	ev := newEvents()
	marks := t.TempDir() // the extension leaves a file per invocation it finished
	var mu sync.Mutex
	var done []bool
	hooks := ev.hooks()
	var current string
	hooks.Invoked = func(e *lambdaemu.Env, id string) {
		mu.Lock()
		current = id
		mu.Unlock()
	}
	hooks.Frozen = func(e *lambdaemu.Env) {
		mu.Lock()
		_, err := os.Stat(filepath.Join(marks, current))
		done = append(done, err == nil)
		mu.Unlock()
		ev.note("frozen", e)
	}
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), Hooks: hooks,
		Env: map[string]string{"PROBE_EXTENSION": "invoke", "PROBE_EXTENSION_DELAY": "200ms", "PROBE_EXTENSION_MARKS": marks}})
	for i := 1; i <= 2; i++ {
		want(t, "request", get(t, f.URL()+"/"), 200)
		ev.wait(t, "frozen", i)
		mu.Lock()
		ok := done[i-1]
		mu.Unlock()
		if !ok {
			t.Fatalf("invocation %d: frozen before the extension finished with it", i)
		}
	}
}

// warm starts n environments by sending n requests that each block until
// the gate opens, so each finds the others busy; it returns when all n are
// frozen again.
func warm(t *testing.T, f *lambdaemu.Function, ev *hookLog, n int) {
	t.Helper()
	path, open := gate(t)
	var replies []<-chan reply
	for i := 1; i <= n; i++ {
		replies = append(replies, goGet(f.URL()+"/block?file="+path))
		ev.wait(t, "invoked", i)
	}
	open()
	for _, r := range replies {
		want(t, "warm-up", <-r, 200)
	}
	ev.wait(t, "frozen", n)
	if s := f.Stats(); s.Total.ColdStarts != int64(n) {
		t.Fatalf("%d cold starts warming %d environments", s.Total.ColdStarts, n)
	}
}

// TestRoutingPolicies checks that requests go to the environment the
// policy picks among the idle ones.
func TestRoutingPolicies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy lambdaemu.Policy
		want   func(lastFrozen int) []string
	}{
		{"round robin", lambdaemu.RoundRobin(), func(int) []string { return []string{"1", "2", "3", "1", "2"} }},
		{"most recent", lambdaemu.MostRecent(), func(last int) []string {
			l := strconv.Itoa(last)
			return []string{l, l, l, l, l}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := newEvents()
			f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), Policy: tc.policy, ReservedConcurrency: 3, Hooks: ev.hooks()})
			warm(t, f, ev, 3)
			last := 0 // the environment that went idle last
			var lastAt time.Time
			for _, e := range f.Stats().Envs {
				if e.IdleSince.After(lastAt) {
					last, lastAt = e.ID, e.IdleSince
				}
			}
			var got []string
			for i := range 5 {
				r := get(t, f.URL()+"/")
				want(t, "request", r, 200)
				got = append(got, r.env)
				ev.wait(t, "frozen", 4+i)
			}
			if w := tc.want(last); !slices.Equal(got, w) {
				t.Fatalf("served by environments %v, want %v", got, w)
			}
			if s := f.Stats(); s.Total.ColdStarts != 3 || s.Total.Thaws != 5 {
				t.Fatalf("stats %+v", s.Total)
			}
		})
	}
}

// TestThrottle checks reserved concurrency: with every environment busy a
// request is answered 429 as a Function URL does, never queued.
func TestThrottle(t *testing.T) {
	ev := newEvents()
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), ReservedConcurrency: 1, Hooks: ev.hooks()})
	path, open := gate(t)
	done := goGet(f.URL() + "/block?file=" + path)
	ev.wait(t, "invoked", 1)
	r := get(t, f.URL()+"/")
	want(t, "request beyond the reserved concurrency", r, 429)
	if r.body != `{"Message":"Rate Exceeded."}` {
		t.Fatalf("429 body %q", r.body)
	}
	open()
	want(t, "blocked request", <-done, 200)
	if s := f.Stats(); s.Total.Throttles != 1 || s.Total.ColdStarts != 1 || len(s.Envs) != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestManualFreeze checks Config.NoFreeze (idle environments keep
// running) with the Freeze and Thaw hooks a test uses instead.
func TestManualFreeze(t *testing.T) {
	ev := newEvents()
	hooks := ev.hooks()
	hooks.Idle = func(e *lambdaemu.Env) { ev.note("idle", e) }
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), NoFreeze: true, Hooks: hooks})
	want(t, "first", get(t, f.URL()+"/"), 200)
	e := ev.wait(t, "idle", 1)
	if s := procState(t, e.PID()); s == 'T' {
		t.Fatal("NoFreeze environment stopped at idle")
	}
	e.Freeze()
	ev.wait(t, "frozen", 1)
	if s := procState(t, e.PID()); s != 'T' {
		t.Fatalf("after Freeze: state %c", s)
	}
	e.Thaw()
	// SIGCONT lands asynchronously.
	testkit.Eventually(t, 5*time.Second, "running again after Thaw", func() bool { return procState(t, e.PID()) != 'T' })
	e.Freeze()
	ev.wait(t, "frozen", 2)
	r := get(t, f.URL()+"/") // routing thaws a frozen idle environment
	want(t, "after a manual freeze", r, 200)
	if r.env != "1" {
		t.Fatalf("served by env %s", r.env)
	}
	if s := f.Stats(); s.Total.Freezes != 2 || s.Total.Thaws != 1 || s.Total.ColdStarts != 1 {
		t.Fatalf("stats %+v", s.Total)
	}
}
