package functions_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/cairnlog/cairn/infra/miniotest"
)

// This file is a minimal Lambda: the Runtime API (and the Extensions API
// registration the Go runtime uses to get SIGTERM) served by the test, and
// the real bootstrap binaries run against it as "containers".

var functionNames = []string{"node", "coordinator", "snapshot", "maintenance"}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// TestMain runs one MinIO for the package and removes the built binaries.
func TestMain(m *testing.M) {
	code := miniotest.RunMain(m)
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// bootstraps builds every function as Lambda would run it (linux, static,
// -tags lambda.norpc), for this machine's architecture, once per test
// binary; it returns the directory holding one binary per function.
func bootstraps(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "cairn-bootstraps-")
		if buildErr != nil {
			return
		}
		args := []string{"build", "-tags", "lambda.norpc", "-trimpath", "-o", buildDir + string(filepath.Separator)}
		for _, f := range functionNames {
			args = append(args, "./"+f)
		}
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// invocation is one event handed to a container and what it answered.
type invocation struct {
	id       string
	event    []byte
	deadline time.Time
	done     chan result
}

// result is a container's answer to one invocation, as posted to
// /response or /error.
type result struct {
	isError     bool
	contentType string
	body        []byte
}

// runtimeAPI serves the Runtime API of one container.
type runtimeAPI struct {
	t        testing.TB
	srv      *httptest.Server
	pending  chan *invocation
	mu       sync.Mutex
	inflight map[string]*invocation
	seq      atomic.Int64
	initErr  atomic.Value // string
}

func newRuntimeAPI(t testing.TB) *runtimeAPI {
	a := &runtimeAPI{t: t, pending: make(chan *invocation), inflight: map[string]*invocation{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", a.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", a.answer(false))
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", a.answer(true))
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		a.initErr.Store(string(b))
		w.WriteHeader(http.StatusAccepted)
	})
	// aws-lambda-go registers an internal extension to be sent SIGTERM at
	// shutdown (lambda.WithEnableSIGTERM); its event/next never returns.
	mux.HandleFunc("POST /2020-01-01/extension/register", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Lambda-Extension-Identifier", "ext-"+r.Header.Get("Lambda-Extension-Name"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"functionName":"cairn","functionVersion":"$LATEST","handler":"bootstrap"}`)
	})
	mux.HandleFunc("GET /2020-01-01/extension/event/next", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	a.srv = httptest.NewServer(mux)
	return a
}

func (a *runtimeAPI) next(w http.ResponseWriter, r *http.Request) {
	var inv *invocation
	select {
	case inv = <-a.pending:
	case <-r.Context().Done():
		return
	}
	a.mu.Lock()
	a.inflight[inv.id] = inv
	a.mu.Unlock()
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", fmt.Sprint(inv.deadline.UnixMilli()))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:cairn")
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
	h.Set("Content-Type", "application/json")
	_, _ = w.Write(inv.event)
}

func (a *runtimeAPI) answer(isError bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		inv := a.inflight[r.PathValue("id")]
		delete(a.inflight, r.PathValue("id"))
		a.mu.Unlock()
		if inv == nil {
			http.Error(w, "unknown request id", http.StatusBadRequest)
			return
		}
		if e := r.Trailer.Get("Lambda-Runtime-Function-Error-Type"); e != "" {
			isError = true
			body = append(body, []byte(" (error trailer: "+e+")")...)
		}
		w.WriteHeader(http.StatusAccepted)
		inv.done <- result{isError: isError, contentType: r.Header.Get("Content-Type"), body: body}
	}
}

// container is one bootstrap process with its Runtime API.
type container struct {
	t      *testing.T
	name   string
	api    *runtimeAPI
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startContainer runs function fn's bootstrap with env on top of the
// variables Lambda sets. It is killed at the end of the test.
func startContainer(t *testing.T, fn, name string, env map[string]string) *container {
	t.Helper()
	bin := filepath.Join(bootstraps(t), fn)
	c := &container{t: t, name: name, api: newRuntimeAPI(t), log: &syncBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(bin)
	c.cmd.Dir = t.TempDir()
	vars := map[string]string{
		"AWS_LAMBDA_RUNTIME_API":          strings.TrimPrefix(c.api.srv.URL, "http://"),
		"AWS_LAMBDA_FUNCTION_NAME":        "cairn-" + fn,
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
		"AWS_LAMBDA_LOG_STREAM_NAME":      "2026/11/21/[$LATEST]" + name,
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/cairn-" + fn,
		"AWS_REGION":                      "us-east-1",
		"AWS_DEFAULT_REGION":              "us-east-1",
		"AWS_EC2_METADATA_DISABLED":       "true",
		"_HANDLER":                        "bootstrap",
		"LAMBDA_TASK_ROOT":                filepath.Dir(bin),
		"TZ":                              ":UTC",
		"HOME":                            c.cmd.Dir,
		"PATH":                            "/usr/bin:/bin",
	}
	for k, v := range env {
		vars[k] = v
	}
	for k, v := range vars {
		c.cmd.Env = append(c.cmd.Env, k+"="+v)
	}
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Signal(syscall.SIGCONT)
		_ = c.cmd.Process.Kill()
		<-c.exited
		c.api.srv.Close()
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", name, c.log)
		}
	})
	return c
}

// invoke hands the container one event and waits for its answer.
func (c *container) invoke(event []byte, timeout time.Duration) (result, error) {
	inv := &invocation{
		id:       fmt.Sprintf("%s-%d", c.name, c.api.seq.Add(1)),
		event:    event,
		deadline: time.Now().Add(timeout),
		done:     make(chan result, 1),
	}
	select {
	case c.api.pending <- inv:
	case <-c.exited:
		return result{}, fmt.Errorf("%s exited", c.name)
	case <-time.After(timeout):
		return result{}, fmt.Errorf("%s did not ask for the next invocation within %v (init error: %v)", c.name, timeout, c.api.initErr.Load())
	}
	select {
	case r := <-inv.done:
		return r, nil
	case <-c.exited:
		return result{}, fmt.Errorf("%s exited during the invocation", c.name)
	case <-time.After(timeout + 5*time.Second):
		return result{}, fmt.Errorf("%s did not answer within %v", c.name, timeout)
	}
}

// signal sends sig to the container's process.
func (c *container) signal(sig syscall.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %v to %s: %v", sig, c.name, err)
	}
}

// urlRequest is an HTTP request as a Function URL receives it.
type urlRequest struct {
	method, path, query string
	header              map[string]string
	body                []byte
	base64              bool // the body travels base64-encoded, as AWS sends binary bodies
}

// urlResponse is what a Function URL client gets back.
type urlResponse struct {
	status int
	header map[string]string
	body   []byte
}

// functionURLEvent builds the event Lambda's Function URL service sends:
// payload format 2.0, lower-case headers, the raw path and query, and the
// body as text or base64.
func functionURLEvent(req urlRequest, seq int64) []byte {
	now := time.Now()
	headers := map[string]string{
		"host":              "abcdefghij.lambda-url.us-east-1.on.aws",
		"user-agent":        "cairn-test",
		"x-amzn-trace-id":   "Root=1-00000000-000000000000000000000000",
		"x-forwarded-for":   "127.0.0.1",
		"x-forwarded-port":  "443",
		"x-forwarded-proto": "https",
	}
	for k, v := range req.header {
		headers[strings.ToLower(k)] = v
	}
	var qs map[string]string
	if req.query != "" {
		qs = map[string]string{}
		for _, kv := range strings.Split(req.query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if old, ok := qs[k]; ok {
				v = old + "," + v
			}
			qs[k] = v
		}
	}
	ev := events.LambdaFunctionURLRequest{
		Version:               "2.0",
		RawPath:               req.path,
		RawQueryString:        req.query,
		Headers:               headers,
		QueryStringParameters: qs,
		RequestContext: events.LambdaFunctionURLRequestContext{
			AccountID:    "123456789012",
			RequestID:    fmt.Sprintf("req-%d", seq),
			DomainName:   "abcdefghij.lambda-url.us-east-1.on.aws",
			DomainPrefix: "abcdefghij",
			Time:         now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{
				Method: req.method, Path: req.path, Protocol: "HTTP/1.1", SourceIP: "127.0.0.1", UserAgent: "cairn-test",
			},
			Authorizer: &events.LambdaFunctionURLRequestContextAuthorizerDescription{
				IAM: &events.LambdaFunctionURLRequestContextAuthorizerIAMDescription{
					AccessKey: "AKIAEXAMPLE", AccountID: "123456789012", CallerID: "AIDAEXAMPLE",
					UserARN: "arn:aws:iam::123456789012:user/cairn-test", UserID: "AIDAEXAMPLE",
				},
			},
		},
		IsBase64Encoded: req.base64,
	}
	if req.base64 {
		ev.Body = base64.StdEncoding.EncodeToString(req.body)
	} else {
		ev.Body = string(req.body)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}

// call sends req through the container's Function URL and decodes the
// streamed answer (a JSON prelude, eight NUL bytes, then the body).
func (c *container) call(req urlRequest) (urlResponse, error) {
	r, err := c.invoke(functionURLEvent(req, c.api.seq.Load()), 30*time.Second)
	if err != nil {
		return urlResponse{}, err
	}
	if r.isError {
		return urlResponse{}, fmt.Errorf("%s %s: function error: %s", req.method, req.path, r.body)
	}
	if r.contentType != "application/vnd.awslambda.http-integration-response" {
		return urlResponse{}, fmt.Errorf("%s %s: response content type %q", req.method, req.path, r.contentType)
	}
	prelude, body, ok := bytes.Cut(r.body, make([]byte, 8))
	if !ok {
		return urlResponse{}, fmt.Errorf("%s %s: no prelude separator in %q", req.method, req.path, r.body)
	}
	var p struct {
		StatusCode int               `json:"statusCode"`
		Headers    map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(prelude, &p); err != nil {
		return urlResponse{}, fmt.Errorf("%s %s: prelude %q: %v", req.method, req.path, prelude, err)
	}
	return urlResponse{status: p.StatusCode, header: p.Headers, body: body}, nil
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
	for !strings.Contains(c.log.String(), s) {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}
