package functions_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/lambdaemu/lambdaemutest"
	"github.com/cairnlog/cairn/infra/miniotest"
)

// This file runs the real bootstrap binaries in infra/lambdaemu's Lambda
// emulator: a "container" is an emulated function with one execution
// environment (reserved concurrency 1) called through its Function URL.
// The tests freeze and thaw it themselves (Config.NoFreeze), where Lambda
// would freeze it after every answer; infra/lambdaemu's own node tests
// measure that.

// bootstraps are every function as Lambda would run it (linux, static,
// -tags lambda.norpc), for this machine's architecture, built once per test
// binary.
var bootstraps = lambdaemutest.NewBootstraps(".", "./node", "./coordinator", "./snapshot", "./maintenance")

// TestMain runs one MinIO for the package and removes the built binaries.
func TestMain(m *testing.M) {
	code := miniotest.RunMain(m)
	if err := bootstraps.Remove(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// result is a container's answer to one invocation, as posted to
// /response or /error.
type result struct {
	isError     bool
	contentType string
	body        []byte
}

// container is one emulated function with a single execution environment.
type container struct {
	t      *testing.T
	name   string
	f      *lambdaemu.Function
	base64 atomic.Bool // the next Function URL event carries its body base64-encoded

	mu      sync.Mutex
	changed chan struct{} // closed and replaced each time the environment goes idle or exits
	settled int           // idles and exits so far
	envs    []*lambdaemu.Env
}

// startContainer sets function fn's bootstrap up with env on top of the
// variables Lambda sets; its environment starts at the first request, with
// log stream "2026/11/21/[$LATEST]<name>". It is killed at the end of the
// test.
func startContainer(t *testing.T, fn, name string, env map[string]string) *container {
	t.Helper()
	c := &container{t: t, name: name, changed: make(chan struct{})}
	settle := func(*lambdaemu.Env) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.settled++
		close(c.changed)
		c.changed = make(chan struct{})
	}
	f, err := lambdaemu.Start(lambdaemu.Config{
		Name:                "cairn-" + fn,
		Bootstrap:           bootstraps.Path(t, fn),
		Env:                 env,
		MemoryMB:            512,
		Region:              "us-east-1",
		Timeout:             30 * time.Second,
		ReservedConcurrency: 1,
		NoFreeze:            true,
		LogStream:           func(int) string { return "2026/11/21/[$LATEST]" + name },
		Hooks: lambdaemu.Hooks{
			Event: func(ev *events.LambdaFunctionURLRequest) {
				if c.base64.CompareAndSwap(true, false) && !ev.IsBase64Encoded {
					ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString([]byte(ev.Body)), true
				}
			},
			Started: func(e *lambdaemu.Env) {
				c.mu.Lock()
				c.envs = append(c.envs, e)
				c.mu.Unlock()
			},
			Idle:   settle,
			Exited: settle,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.f = f
	t.Cleanup(func() {
		_ = f.Close()
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", name, c.log())
		}
	})
	return c
}

// log returns what the container's processes wrote so far.
func (c *container) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, e := range c.envs {
		b.WriteString(e.Log())
	}
	return b.String()
}

// settledSince waits until the environment went idle or exited after the
// n-th time, so that the next request finds it idle (an environment that
// answered is idle only once its runtime asked for more).
func (c *container) settledSince(n int) error {
	timeout := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		done, ch := c.settled > n, c.changed
		c.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-timeout:
			return fmt.Errorf("%s did not go idle within 30 s", c.name)
		}
	}
}

func (c *container) settledCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settled
}

// invoke hands the container one event and waits for its answer.
func (c *container) invoke(event []byte, timeout time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(c.t.Context(), timeout)
	defer cancel()
	n := c.settledCount()
	res, err := c.f.Invoke(ctx, event)
	switch {
	case errors.Is(err, lambdaemu.ErrFunction):
		return result{isError: true, contentType: res.ContentType, body: res.Payload}, c.settledSince(n)
	case err != nil:
		return result{}, fmt.Errorf("%s: %w", c.name, err)
	}
	return result{contentType: res.ContentType, body: res.Payload}, c.settledSince(n)
}

// reap runs the environment's Shutdown phase as Lambda does (SIGTERM to
// the runtime, SIGKILL after the 500 ms grace of internal extensions) and
// waits until it is gone.
func (c *container) reap() {
	for _, e := range c.f.Envs() {
		e.Reap()
	}
}

// freeze stops the container's processes (SIGSTOP), as Lambda freezes
// an idle environment.
func (c *container) freeze() {
	for _, e := range c.f.Envs() {
		e.Freeze()
	}
}

// thaw continues them (SIGCONT).
func (c *container) thaw() {
	for _, e := range c.f.Envs() {
		e.Thaw()
	}
}

// urlRequest is an HTTP request to a Function URL.
type urlRequest struct {
	method, path, query string
	header              map[string]string
	body                []byte
	base64              bool // the body travels base64-encoded, whatever its content type
}

// urlResponse is what a Function URL client gets back.
type urlResponse struct {
	status int
	header map[string]string
	body   []byte
}

// call sends req through the container's Function URL and returns once
// the environment is idle again.
func (c *container) call(req urlRequest) (urlResponse, error) {
	url := c.f.URL() + req.path
	if req.query != "" {
		url += "?" + req.query
	}
	hr, err := http.NewRequestWithContext(c.t.Context(), req.method, url, strings.NewReader(string(req.body)))
	if err != nil {
		return urlResponse{}, err
	}
	for k, v := range req.header {
		hr.Header.Set(k, v)
	}
	c.base64.Store(req.base64)
	n := c.settledCount()
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return urlResponse{}, fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return urlResponse{}, fmt.Errorf("%s %s: body: %w", req.method, req.path, err)
	}
	if resp.StatusCode == http.StatusBadGateway && resp.Header.Get("X-Lambdaemu-Env") == "" {
		return urlResponse{}, fmt.Errorf("%s %s: function error: %s", req.method, req.path, body)
	}
	header := map[string]string{}
	for k, v := range resp.Header {
		header[k] = strings.Join(v, ",")
	}
	return urlResponse{status: resp.StatusCode, header: header, body: body}, c.settledSince(n)
}

// mustCall is call that fails the test on a transport error.
func (c *container) mustCall(req urlRequest) urlResponse {
	c.t.Helper()
	r, err := c.call(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// waitLog waits until the container's log contains s.
func (c *container) waitLog(ctx context.Context, s string) bool {
	for !strings.Contains(c.log(), s) {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}
