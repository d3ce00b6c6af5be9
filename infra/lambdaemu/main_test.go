package lambdaemu_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/lambdaemu/lambdaemutest"
	"github.com/cairnlog/cairn/infra/miniotest"
)

// bootstraps are the functions these tests run: "probe" (this package's
// test function) and "node" (Cairn's node function).
var bootstraps = lambdaemutest.NewBootstraps(".", "./testdata/probe", "github.com/cairnlog/cairn/functions/node")

// TestMain runs one MinIO for the package (the node function needs S3)
// and removes the built bootstraps.
func TestMain(m *testing.M) {
	code := miniotest.RunMain(m)
	_ = bootstraps.Remove()
	os.Exit(code)
}

// hookLog counts hook calls so that a test can wait for the n-th one
// without sleeping.
type hookLog struct {
	mu      sync.Mutex
	changed chan struct{}
	counts  map[string]int
	envs    map[string][]*lambdaemu.Env
}

func newEvents() *hookLog {
	return &hookLog{changed: make(chan struct{}), counts: map[string]int{}, envs: map[string][]*lambdaemu.Env{}}
}

func (ev *hookLog) note(kind string, e *lambdaemu.Env) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.counts[kind]++
	ev.envs[kind] = append(ev.envs[kind], e)
	close(ev.changed)
	ev.changed = make(chan struct{})
}

func (ev *hookLog) hooks() lambdaemu.Hooks {
	return lambdaemu.Hooks{
		Started: func(e *lambdaemu.Env) { ev.note("started", e) },
		Invoked: func(e *lambdaemu.Env, _ string) { ev.note("invoked", e) },
		Frozen:  func(e *lambdaemu.Env) { ev.note("frozen", e) },
		Exited:  func(e *lambdaemu.Env) { ev.note("exited", e) },
	}
}

// wait blocks until kind happened n times in all, and returns the env of
// the n-th.
func (ev *hookLog) wait(t *testing.T, kind string, n int) *lambdaemu.Env {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		ev.mu.Lock()
		if ev.counts[kind] >= n {
			e := ev.envs[kind][n-1]
			ev.mu.Unlock()
			return e
		}
		ch := ev.changed
		ev.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no %d× %s within 30 s (%d so far)", n, kind, ev.counts[kind])
		}
	}
}

// reply is an HTTP answer read to the end.
type reply struct {
	status int
	header http.Header
	body   string
	env    string // the X-Lambdaemu-Env header: which environment answered
}

func do(t *testing.T, method, url, contentType string, body []byte) reply {
	t.Helper()
	r, err := tryDo(method, url, contentType, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryDo is do for goroutines other than the test's.
func tryDo(method, url, contentType string, body []byte) (reply, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: body: %w", method, url, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b), env: resp.Header.Get("X-Lambdaemu-Env")}, nil
}

// goGet runs a GET in a goroutine of its own; the channel gets its answer.
func goGet(url string) <-chan reply {
	ch := make(chan reply, 1)
	go func() {
		r, err := tryDo("GET", url, "", nil)
		if err != nil {
			r = reply{body: err.Error()}
		}
		ch <- r
	}()
	return ch
}

func get(t *testing.T, url string) reply { t.Helper(); return do(t, "GET", url, "", nil) }

func want(t *testing.T, what string, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %d %q, want %d", what, r.status, r.body, status)
	}
}

// procState is the state letter of /proc/<pid>/stat: 'T' when stopped.
func procState(t *testing.T, pid int) byte {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok || rest == "" {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return rest[0]
}

// gate is a file the probe's /block waits for.
func gate(t *testing.T) (path string, open func()) {
	path = filepath.Join(t.TempDir(), "gate")
	return path, func() {
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
