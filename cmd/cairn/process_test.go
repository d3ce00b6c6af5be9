package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/infra/testkit"
)

// This file runs the real cairn binary as a child process, for the tests
// that need a process to die (crash_test.go) or whose whole output must be
// seen (secrets_test.go).

// buildCairn builds this package's command into a directory of t's, with
// the race detector when the test binary has it, so that the child is
// checked as the in-process tests are. It returns the binary's path.
func buildCairn(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cairn")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go %s .: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// childEnv is this process's environment without any CAIRN_* or AWS_*
// variable (a developer's own must not leak into the child), plus vars.
func childEnv(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAIRN_") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env, "AWS_EC2_METADATA_DISABLED=true")
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// child is one `cairn serve` process.
type child struct {
	cmd     *exec.Cmd
	out     *lockedBuffer // stdout and stderr, interleaved
	exited  chan struct{} // closed when the process has exited
	err     error         // Wait's error, once exited is closed
	addr    string        // the host:port it printed
	started time.Time     // when it was started
}

// startChild runs bin with args and env, and waits until it prints the
// address it listens on. The process is killed when the test ends, if it
// is still running; if the test failed, the tail of its output is logged.
func startChild(t *testing.T, bin string, args, env []string) *child {
	t.Helper()
	c := &child{out: &lockedBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = env
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.SysProcAttr = childProcAttr()
	c.started = time.Now()
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			t.Logf("--- cairn pid %d output (tail) ---\n%s", c.cmd.Process.Pid, lastLines(c.out.String(), 40))
		}
	})
	// 90 s: a -race build probing a loaded MinIO.
	testkit.EventuallyNil(t, 90*time.Second, "cairn "+strings.Join(args, " ")+" prints its address", func() error {
		select {
		case <-c.exited:
			t.Fatalf("cairn %s exited before listening: %v\n%s", strings.Join(args, " "), c.err, c.out)
		default:
		}
		m := listening.FindStringSubmatch(c.out.String())
		if m == nil {
			return fmt.Errorf("its output so far:\n%s", c.out)
		}
		c.addr = strings.TrimPrefix(m[1], "http://")
		return nil
	})
	return c
}

// kill ends the process with SIGKILL: no shutdown, no lease release, its
// connections reset mid-request.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill pid %d: %v", c.cmd.Process.Pid, err)
	}
	<-c.exited
}

// stop sends SIGTERM and returns the exit error (nil: exit status 0), or
// fails t if the process has not exited within 30 s.
func (c *child) stop(t *testing.T) error {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("SIGTERM pid %d: %v", c.cmd.Process.Pid, err)
	}
	testkit.Await(t, 30*time.Second, fmt.Sprintf("cairn pid %d stops after SIGTERM", c.cmd.Process.Pid), c.exited)
	return c.err
}

// badOutput returns the first sign in the output that the child went wrong
// on its own — a data race report or a panic — or "".
func (c *child) badOutput() string {
	out := c.out.String()
	for _, s := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if i := strings.Index(out, s); i >= 0 {
			return out[i:min(len(out), i+2000)]
		}
	}
	return ""
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// follower sends every connection to the cairn process of the moment, as a
// DNS name or a load balancer in front of a restarted server would. A
// Client built on it, and the Producers built on that, outlive the
// restarts, so a batch retried after a crash carries the idempotency keys
// of its first attempt.
type follower struct{ addr atomic.Pointer[string] }

func (f *follower) set(addr string) { f.addr.Store(&addr) }

// client returns a Client of the current process that retries without end
// (the test's deadline bounds it) and backs off at most 500 ms, so that it
// finds a restarted process soon.
func (f *follower) client(t *testing.T) *client.Client {
	t.Helper()
	d := &net.Dialer{Timeout: 2 * time.Second}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, *f.addr.Load())
	}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := client.New("http://cairn.test", client.WithHTTPClient(&http.Client{Transport: tr}),
		client.WithRetry(client.RetryPolicy{
			MaxAttempts: -1, MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
			AttemptTimeout: 20 * time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
