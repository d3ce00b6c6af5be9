package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	"github.com/cairnlog/cairn/segmentlog"
)

// TestMain runs one MinIO for the package and removes the bootstraps
// TestReadmeOnLambda built.
func TestMain(m *testing.M) {
	code := miniotest.RunMain(m)
	_ = stackBootstraps.Remove()
	os.Exit(code)
}

// lockedBuffer is an io.Writer safe to read while serve writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listening = regexp.MustCompile(`listening on (http://\S+)`)

// startServe runs serve until the test ends (or stop is called) and
// returns its base URL, the printed banner and a stop func that waits for
// the graceful shutdown.
func startServe(t *testing.T, o serveOptions, env map[string]string) (string, string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	exited := make(chan struct{})
	var serveErr error
	go func() { defer close(exited); serveErr = serve(ctx, o, func(k string) string { return env[k] }, out) }()
	var once sync.Once
	stop := func() error {
		once.Do(func() { cancel(); <-exited })
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	var addr []string
	testkit.EventuallyNil(t, 30*time.Second, "serve prints its address", func() error {
		select {
		case <-exited:
			t.Fatalf("serve exited before listening: %v\n%s", serveErr, out)
		default:
		}
		if addr = listening.FindStringSubmatch(out.String()); addr == nil {
			return fmt.Errorf("its output so far:\n%s", out)
		}
		return nil
	})
	return addr[1], out.String(), stop
}

func call(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestServeFS: every function's routes in one process on the embedded
// store, a token, and a graceful stop that releases the leases.
func TestServeFS(t *testing.T) {
	dir := t.TempDir()
	const token = "tok-3141"
	base, banner, stop := startServe(t, serveOptions{addr: "127.0.0.1:0", store: "fs", dataDir: dir, token: token}, nil)
	if strings.Contains(banner, token) {
		t.Fatalf("the banner shows the token: %s", banner)
	}
	if code, _ := call(t, "GET", base+"/healthz", "", ""); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := call(t, "POST", base+"/v1/pchannels/p0/append", "", `{"messages":[{"vchannel":"v0"}]}`); code != 401 || !strings.Contains(string(body), "unauthorized") {
		t.Fatalf("append without token: %d %s", code, body)
	}
	code, body := call(t, "POST", base+"/v1/pchannels/p0/append", token, `{"messages":[{"vchannel":"v0","payload":"aGk="}]}`)
	if code != 200 {
		t.Fatalf("append: %d %s", code, body)
	}
	code, body = call(t, "GET", base+"/v1/pchannels/p0/messages?from=earliest", token, "")
	var rr struct{ Messages []struct{ Payload []byte } }
	if code != 200 || json.Unmarshal(body, &rr) != nil || len(rr.Messages) != 1 || string(rr.Messages[0].Payload) != "hi" {
		t.Fatalf("read: %d %s", code, body)
	}
	for _, path := range []string{"/v1/pchannels", "/v1/leases", "/v1/pchannels/p0/lease", "/metrics"} {
		if code, body := call(t, "GET", base+path, token, ""); code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	store, err := objstore.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := store.Get(t.Context(), segmentlog.Layout{}.Lease("p0"))
	if err != nil || !bytes.Contains(obj.Body, []byte(`"released":true`)) {
		t.Fatalf("lease after stop: %s, %v", obj.Body, err)
	}
}

// TestServeS3: the same process over MinIO, configured by CAIRN_S3_*.
func TestServeS3(t *testing.T) {
	mc := miniotest.Get(t)
	user, pass := mc.Credentials()
	env := map[string]string{
		"CAIRN_S3_ENDPOINT": mc.Endpoint(),
		"CAIRN_S3_BUCKET":   "serve-test",
		"CAIRN_S3_PREFIX":   "cairn",
	}
	t.Setenv("AWS_ACCESS_KEY_ID", user)
	t.Setenv("AWS_SECRET_ACCESS_KEY", pass)
	t.Setenv("AWS_REGION", "us-east-1")
	base, banner, stop := startServe(t, serveOptions{addr: "127.0.0.1:0", store: "s3", createBucket: true}, env)
	if !strings.Contains(banner, "s3 serve-test/cairn at "+mc.Endpoint()) || strings.Contains(banner, pass) {
		t.Fatalf("banner %q", banner)
	}
	code, body := call(t, "POST", base+"/v1/pchannels/p0/append", "", `{"messages":[{"vchannel":"v0"}]}`)
	if code != 200 {
		t.Fatalf("append: %d %s", code, body)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

func TestServeRefusesUnknownStore(t *testing.T) {
	err := serve(t.Context(), serveOptions{addr: "127.0.0.1:0", store: "tape"}, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "want fs or s3") {
		t.Fatalf("serve --store tape: %v", err)
	}
}

// TestServePChannelsFromEnv: without --pchannels, serve takes the pchannel
// set from CAIRN_PCHANNELS, as the Lambda functions do; the flag wins.
func TestServePChannelsFromEnv(t *testing.T) {
	env := map[string]string{"CAIRN_PCHANNELS": "q0,q1"}
	_, banner, stop := startServe(t, serveOptions{addr: "127.0.0.1:0", store: "fs", dataDir: t.TempDir()}, env)
	if !strings.Contains(banner, "pchannels: q0,q1,") {
		t.Fatalf("banner %q, want the pchannels of CAIRN_PCHANNELS", banner)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	_, banner, _ = startServe(t, serveOptions{addr: "127.0.0.1:0", store: "fs", dataDir: t.TempDir(), pchannels: []string{"r0"}}, env)
	if !strings.Contains(banner, "pchannels: r0,") {
		t.Fatalf("banner %q, want --pchannels to win", banner)
	}
}

// TestServeCompactionOffFromEnv: CAIRN_COMPACTION=off turns serve's
// compactors off, as it does the maintenance function's.
func TestServeCompactionOffFromEnv(t *testing.T) {
	o := serveOptions{addr: "127.0.0.1:0", store: "fs", dataDir: t.TempDir(), system: systemOptions{compactMinRefs: 64}}
	_, banner, stop := startServe(t, o, nil)
	if !strings.Contains(banner, "compaction: from 64 files)") {
		t.Fatalf("banner %q, want compaction on", banner)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	o.dataDir = t.TempDir()
	_, banner, _ = startServe(t, o, map[string]string{"CAIRN_COMPACTION": "off"})
	if !strings.Contains(banner, "compaction: off)") {
		t.Fatalf("banner %q with CAIRN_COMPACTION=off, want compaction off", banner)
	}
}

// TestServeS3SetupAdvice: a failed S3 setup says what to do: set
// credentials when none are, pass --create-bucket when the bucket is
// missing.
func TestServeS3SetupAdvice(t *testing.T) {
	mc := miniotest.Get(t)
	user, pass := mc.Credentials()
	env := map[string]string{"CAIRN_S3_ENDPOINT": mc.Endpoint(), "CAIRN_S3_BUCKET": "no-such-bucket"}
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	for _, k := range []string{"AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(k, "")
	}
	serveS3 := func() error {
		return serve(t.Context(), serveOptions{addr: "127.0.0.1:0", store: "s3"}, func(k string) string { return env[k] }, io.Discard)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	err := serveS3()
	if err == nil || !strings.Contains(err.Error(), "no AWS credentials are set: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") {
		t.Fatalf("without credentials: %v", err)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", user)
	t.Setenv("AWS_SECRET_ACCESS_KEY", pass)
	err = serveS3()
	if err == nil || !strings.HasPrefix(err.Error(), `the S3 store cannot be used; if bucket "no-such-bucket" does not exist, create it or pass --create-bucket (cause: `) ||
		strings.Contains(err.Error(), "credentials are set") || strings.Contains(err.Error(), pass) {
		t.Fatalf("without the bucket: %v", err)
	}
}
