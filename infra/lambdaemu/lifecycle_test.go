package lambdaemu_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/lambdaemu/lambdaemutest"
	"github.com/cairnlog/cairn/infra/testkit"
)

// TestTimeout checks that an invocation past the function timeout
// destroys its environment and answers 502, and that the next request
// starts a new one.
func TestTimeout(t *testing.T) {
	ev := newEvents()
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), Timeout: 300 * time.Millisecond, Hooks: ev.hooks()})
	r := get(t, f.URL()+"/sleep?d=1h")
	want(t, "request past the timeout", r, 502)
	if r.body != `{"Message":"Internal Server Error"}` {
		t.Fatalf("timeout answer %q", r.body)
	}
	e := ev.wait(t, "exited", 1)
	if e.State() != lambdaemu.StateDead {
		t.Fatalf("timed-out environment is %v", e.State())
	}
	r = get(t, f.URL()+"/")
	want(t, "after the timeout", r, 200)
	if r.env != "2" {
		t.Fatalf("served by env %s, want a new one", r.env)
	}
	if s := f.Stats(); s.Total.Timeouts != 1 || s.Total.ColdStarts != 2 || s.Envs[0].Timeouts != 1 || s.Total.Crashes != 0 {
		t.Fatalf("stats %+v", s)
	}
	_, err := f.Invoke(t.Context(), []byte(`{"rawPath":"/sleep","queryStringParameters":{"d":"1h"}}`))
	if !errors.Is(err, lambdaemu.ErrTimeout) {
		t.Fatalf("Invoke past the timeout: %v", err)
	}
}

// TestInitErrors checks the three ways an init phase fails: the runtime
// posts init/error, exits, or overruns the init timeout. Each answers 502
// and counts an init error; Invoke tells which.
func TestInitErrors(t *testing.T) {
	for _, tc := range []struct {
		init, want string
	}{
		{"error", "Probe.InitError"},
		{"exit", "Runtime.ExitError"},
		{"hang", "Sandbox.Timedout"},
	} {
		t.Run(tc.init, func(t *testing.T) {
			f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), InitTimeout: 300 * time.Millisecond,
				Env: map[string]string{"PROBE_INIT": tc.init}})
			want(t, "request", get(t, f.URL()+"/"), 502)
			_, err := f.Invoke(t.Context(), []byte(`{}`))
			if !errors.Is(err, lambdaemu.ErrInit) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Invoke: %v, want ErrInit with %s", err, tc.want)
			}
			if s := f.Stats(); s.Total.InitErrors != 2 || s.Total.Invocations != 0 || s.Total.Crashes != 0 {
				t.Fatalf("stats %+v", s.Total)
			}
		})
	}
}

// TestReapIdle checks the idle reaper both ways: a Shutdown phase (the
// runtime gets SIGTERM through aws-lambda-go's internal extension) or a
// SIGKILL without warning; and that with no extension registered even a
// Shutdown phase kills at once.
func TestReapIdle(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mode       lambdaemu.ReapMode
		env        map[string]string
		sigterm    bool
		wantStats  func(lambdaemu.Counters) bool
		statsWords string
	}{
		{"shutdown", lambdaemu.ReapShutdown, nil, true, func(c lambdaemu.Counters) bool { return c.ReapsGraceful == 1 && c.ReapsKilled == 0 }, "one graceful reap"},
		{"kill", lambdaemu.ReapKill, nil, false, func(c lambdaemu.Counters) bool { return c.ReapsKilled == 1 && c.ReapsGraceful == 0 }, "one kill"},
		{"shutdown without extensions", lambdaemu.ReapShutdown, map[string]string{"PROBE_NO_SIGTERM": "1"}, false, func(c lambdaemu.Counters) bool { return c.ReapsGraceful == 1 }, "one graceful reap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := newEvents()
			f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), IdleTimeout: 100 * time.Millisecond, Reap: tc.mode, Env: tc.env, Hooks: ev.hooks()})
			want(t, "request", get(t, f.URL()+"/"), 200)
			e := ev.wait(t, "exited", 1)
			// The log pipe may lag the exit a little.
			testkit.Within(t, 5*time.Second, func() bool { return !tc.sigterm || strings.Contains(e.Log(), "probe: SIGTERM") })
			if got := strings.Contains(e.Log(), "probe: SIGTERM"); got != tc.sigterm {
				t.Fatalf("runtime got SIGTERM: %v, want %v:\n%s", got, tc.sigterm, e.Log())
			}
			if s := f.Stats(); !tc.wantStats(s.Total) || s.Total.Crashes != 0 || len(f.Envs()) != 0 {
				t.Fatalf("stats %+v, want %s", s.Total, tc.statsWords)
			}
		})
	}
}

// TestKillInsideInvocation uses the Invoked hook to SIGKILL an environment
// while it runs an invocation: the client gets 502, and nothing is left.
func TestKillInsideInvocation(t *testing.T) {
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), Hooks: lambdaemu.Hooks{
		Invoked: func(e *lambdaemu.Env, _ string) { e.Kill() },
	}})
	want(t, "request whose environment is killed", get(t, f.URL()+"/sleep?d=1h"), 502)
	s := f.Stats()
	if s.Total.ReapsKilled != 1 || s.Total.Invocations != 1 || s.Envs[0].State != lambdaemu.StateDead {
		t.Fatalf("stats %+v", s)
	}
	if _, err := os.Stat("/proc/" + itoa(s.Envs[0].PID)); !os.IsNotExist(err) {
		t.Fatalf("killed runtime %d still in /proc: %v", s.Envs[0].PID, err)
	}
}

// TestCrash checks that a runtime exiting during an invocation answers
// 502 and counts a crash.
func TestCrash(t *testing.T) {
	ev := newEvents()
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), Hooks: ev.hooks()})
	want(t, "request whose runtime exits", get(t, f.URL()+"/exit"), 502)
	ev.wait(t, "exited", 1)
	if s := f.Stats(); s.Total.Crashes != 1 || s.Total.ReapsKilled != 0 {
		t.Fatalf("stats %+v", s.Total)
	}
}

// TestFreezeForever checks the hook that loses an environment frozen: it
// stays stopped, is never routed to again, and no longer counts against
// the reserved concurrency.
func TestFreezeForever(t *testing.T) {
	ev := newEvents()
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), ReservedConcurrency: 1, Hooks: ev.hooks()})
	r := get(t, f.URL()+"/")
	want(t, "first", r, 200)
	lost := ev.wait(t, "frozen", 1)
	lost.FreezeForever()
	for i := range 2 {
		r := get(t, f.URL()+"/")
		want(t, "after the loss", r, 200)
		if r.env != "2" {
			t.Fatalf("request %d served by env %s", i, r.env)
		}
		ev.wait(t, "frozen", 2+i)
	}
	if s := procState(t, lost.PID()); s != 'T' || lost.State() != lambdaemu.StateLost {
		t.Fatalf("lost environment in /proc state %c, emulator state %v", s, lost.State())
	}
	if s := f.Stats(); s.Envs[0].Thaws != 0 || s.Envs[0].Invocations != 1 || s.Total.Throttles != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestFreezeForeverAfterInvocation checks "freeze after this invocation
// and never thaw": set inside the invocation, it takes effect when the
// invocation ends.
func TestFreezeForeverAfterInvocation(t *testing.T) {
	ev := newEvents()
	hooks := ev.hooks()
	hooks.Invoked = func(e *lambdaemu.Env, _ string) { e.FreezeForever() }
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), Hooks: hooks})
	want(t, "request", get(t, f.URL()+"/"), 200)
	e := ev.wait(t, "frozen", 1)
	if e.State() != lambdaemu.StateLost || procState(t, e.PID()) != 'T' {
		t.Fatalf("state %v", e.State())
	}
}

// TestExternalExtension checks an external extension: it gets INVOKE
// with each invocation, SHUTDOWN when the environment is reaped, and may
// exit within the grace period.
func TestExternalExtension(t *testing.T) {
	probe := bootstraps.Path(t, "probe")
	ext := filepath.Join(t.TempDir(), "ext-watch")
	copyFile(t, probe, ext)
	ev := newEvents()
	ids := make(chan string, 1)
	hooks := ev.hooks()
	hooks.Invoked = func(_ *lambdaemu.Env, id string) { ids <- id }
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: probe, Extensions: []string{ext}, Hooks: hooks})
	want(t, "request", get(t, f.URL()+"/"), 200)
	e := ev.wait(t, "frozen", 1)
	id := <-ids
	e.Reap()
	log := e.Log()
	for _, line := range []string{"ext-watch: INVOKE " + id, "ext-watch: SHUTDOWN", "ext-watch: exiting", "probe: SIGTERM"} {
		if !strings.Contains(log, line) {
			t.Fatalf("log lacks %q:\n%s", line, log)
		}
	}
	if s := f.Stats(); s.Total.ReapsGraceful != 1 {
		t.Fatalf("stats %+v", s.Total)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
