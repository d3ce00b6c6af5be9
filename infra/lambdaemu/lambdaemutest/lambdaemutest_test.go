package lambdaemutest_test

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/lambdaemu/lambdaemutest"
)

// recordTB records what a helper does to its test: what it fails with
// (Fatalf ends the goroutine, as testing's does), what it logs and reports,
// the cleanups it registers; it reads as failed when failed is set.
type recordTB struct {
	testing.TB
	failed   bool
	fatal    string
	errs     []string
	logs     []string
	cleanups []func()
}

func (r *recordTB) Helper()          {}
func (r *recordTB) Failed() bool     { return r.failed }
func (r *recordTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recordTB) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}
func (r *recordTB) Error(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }
func (r *recordTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with r on a goroutine of its own (Fatalf ends it).
func (r *recordTB) run(f func(tb testing.TB)) {
	done := make(chan struct{})
	go func() { defer close(done); f(r) }()
	<-done
}

// cleanup runs the registered cleanups, last first, as testing does.
func (r *recordTB) cleanup() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// TestBootstraps: the probe is built once, at the first Path, and Remove
// deletes it; a name the set does not build, and a package that does not
// build, fail the test with what went wrong.
func TestBootstraps(t *testing.T) {
	b := lambdaemutest.NewBootstraps("..", "./testdata/probe")
	t.Cleanup(func() { _ = b.Remove() })
	bin := b.Path(t, "probe")
	st, err := os.Stat(bin)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o100 == 0 {
		t.Fatalf("bootstrap %s: %v, %v; want an executable file", bin, st, err)
	}
	if again := b.Path(t, "probe"); again != bin {
		t.Fatalf("a second Path: %s, want the first build's %s", again, bin)
	}
	r := &recordTB{TB: t}
	r.run(func(tb testing.TB) { b.Path(tb, "node") })
	if !strings.Contains(r.fatal, `no bootstrap "node"`) {
		t.Fatalf("Path of a name not built failed with %q", r.fatal)
	}
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after Remove, the bootstrap: %v", err)
	}
	if err := lambdaemutest.NewBootstraps("..").Remove(); err != nil {
		t.Fatalf("Remove of bootstraps never built: %v", err)
	}

	r = &recordTB{TB: t}
	bad := lambdaemutest.NewBootstraps("..", "./testdata/no-such-function")
	t.Cleanup(func() { _ = bad.Remove() })
	r.run(func(tb testing.TB) { bad.Path(tb, "no-such-function") })
	if !strings.HasPrefix(r.fatal, "build the bootstraps: ") || !strings.Contains(r.fatal, "no-such-function") {
		t.Fatalf("Path of a package that does not build failed with %q", r.fatal)
	}
}

// TestStart: the function answers while the test runs; its cleanup closes
// it and, the test having failed, logs each environment's output.
func TestStart(t *testing.T) {
	b := lambdaemutest.NewBootstraps("..", "./testdata/probe")
	t.Cleanup(func() { _ = b.Remove() })
	probe := b.Path(t, "probe")
	r := &recordTB{TB: t, failed: true}
	var f *lambdaemu.Function
	r.run(func(tb testing.TB) { f = lambdaemutest.Start(tb, lambdaemu.Config{Name: "probe-fn", Bootstrap: probe}) })
	if f == nil {
		t.Fatalf("Start failed: %s", r.fatal)
	}
	resp, err := http.Get(f.URL() + "/raw")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"n":1}` {
		t.Fatalf("GET /raw: %d %s", resp.StatusCode, body)
	}
	envs := f.Envs()
	if len(envs) != 1 {
		t.Fatalf("%d environments, want 1", len(envs))
	}

	r.cleanup()
	if len(r.errs) != 0 {
		t.Fatalf("the cleanup reported %v", r.errs)
	}
	if len(r.logs) != 1 || !strings.HasPrefix(r.logs[0], fmt.Sprintf("--- %v log ---\n", envs[0])) ||
		!strings.Contains(r.logs[0], "probe: invocation 1 /raw") {
		t.Fatalf("a failed test's cleanup logged %q; want the environment's output", r.logs)
	}
	if resp, err := http.Get(f.URL() + "/raw"); err == nil {
		resp.Body.Close()
		t.Fatalf("GET after the cleanup: %d, want the function closed", resp.StatusCode)
	}
}
