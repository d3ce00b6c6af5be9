package sigv4

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/client/sigv4/sigv4test"
	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
)

// The tests sign with static test credentials and check each request as a
// Function URL would (sigv4test: signed again by aws-sdk-go-v2's signer,
// Authorization headers compared), in front of the real API over a memory
// store.

var testCreds = aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret-test-key"}

const testRegion = "eu-west-3"

// seen is what the verifying server received, request by request.
type seen struct {
	mu   sync.Mutex
	reqs []seenReq
}

type seenReq struct {
	method, path, date, auth, hash string
	verified                       bool
}

func (s *seen) all() []seenReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenReq(nil), s.reqs...)
}

// apiServer serves the API behind signature checks; fail, if set, may
// answer a verified request itself.
func apiServer(t *testing.T, fail func(n int, w http.ResponseWriter) bool) (string, *seen) {
	t.Helper()
	sys, err := system.New(system.Config{Holder: "sigv4-" + t.Name(), LeaseTTL: 4 * time.Second, CacheBytes: 1 << 20,
		TimeTickInterval: -1, Logger: slog.New(slog.DiscardHandler)}, objstore.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{}, sys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	})
	s := &seen{}
	h := srv.Handler(api.AllRoles)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := sigv4test.Verify(r, testCreds, testRegion)
		s.mu.Lock()
		s.reqs = append(s.reqs, seenReq{r.Method, r.URL.Path, r.Header.Get("X-Amz-Date"), r.Header.Get("Authorization"),
			r.Header.Get("X-Amz-Content-Sha256"), err == nil})
		n := len(s.reqs)
		s.mu.Unlock()
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"code":"forbidden","message":"signature"}`)
			return
		}
		if fail != nil && fail(n, w) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs.URL, s
}

// testSigner signs with creds; its clock moves a second each signature.
func testSigner(creds aws.Credentials) *Signer {
	s := New(aws.Config{Region: testRegion, Credentials: credentials.StaticCredentialsProvider{Value: creds}})
	var mu sync.Mutex
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t0 = t0.Add(time.Second)
		return t0
	}
	return s
}

// TestSigV4SignsEveryCall: appends (a JSON body) and reads (none) pass the
// Function URL's check; each carries its body's hash.
func TestSigV4SignsEveryCall(t *testing.T) {
	url, s := apiServer(t, nil)
	c, err := client.New(url, testSigner(testCreds).Option())
	if err != nil {
		t.Fatal(err)
	}
	acks, err := c.Append(t.Context(), "p0", []client.Message{{VChannel: "v0", Payload: []byte("signed")}}, client.AppendOptions{})
	if err != nil || len(acks) != 1 {
		t.Fatalf("append: %v %v", acks, err)
	}
	tail, err := c.Tail(t.Context(), "p0")
	if err != nil || tail.NextOffset <= acks[0].ID.Offset {
		t.Fatalf("tail: %+v %v", tail, err)
	}
	reqs := s.all()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		if !r.verified {
			t.Errorf("%s %s: signature refused", r.method, r.path)
		}
		if !strings.Contains(r.auth, "/"+testRegion+"/lambda/aws4_request") {
			t.Errorf("%s %s: scope in %q, want region %s and service lambda", r.method, r.path, r.auth, testRegion)
		}
	}
	if reqs[0].hash == EmptyHash || len(reqs[0].hash) != 64 {
		t.Errorf("append: payload hash %q, want the body's", reqs[0].hash)
	}
	if reqs[1].hash != EmptyHash {
		t.Errorf("tail: payload hash %q, want the empty body's", reqs[1].hash)
	}
}

// TestSigV4RetryResigns: a retried append is signed again — a new
// X-Amz-Date, a new signature, the same body hash — and passes the check.
func TestSigV4RetryResigns(t *testing.T) {
	url, s := apiServer(t, func(n int, w http.ResponseWriter) bool {
		if n > 1 {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"code":"unavailable","message":"try again"}`)
		return true
	})
	c, err := client.New(url, testSigner(testCreds).Option(), client.WithRetry(client.RetryPolicy{MinBackoff: time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Append(t.Context(), "p0", []client.Message{{VChannel: "v0", Payload: []byte("x"), Key: &client.Key{Producer: "t", Seq: 1}}}, client.AppendOptions{})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	reqs := s.all()
	if len(reqs) != 2 {
		t.Fatalf("%d attempts, want 2 (one 503, one retry)", len(reqs))
	}
	a, b := reqs[0], reqs[1]
	if !a.verified || !b.verified {
		t.Fatalf("signatures: first %v, retry %v", a.verified, b.verified)
	}
	if a.date == b.date || a.auth == b.auth {
		t.Errorf("the retry reused the first signature (dates %s, %s)", a.date, b.date)
	}
	if a.hash != b.hash {
		t.Errorf("body hash changed between attempts: %s, %s", a.hash, b.hash)
	}
}

// TestSigV4WrongSecret: a signature by the wrong secret is refused (403),
// not retried, and the API never sees the request.
func TestSigV4WrongSecret(t *testing.T) {
	url, s := apiServer(t, nil)
	wrong := testCreds
	wrong.SecretAccessKey = "not-the-secret"
	c, err := client.New(url, testSigner(wrong).Option())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Append(t.Context(), "p0", []client.Message{{VChannel: "v0", Payload: []byte("x")}}, client.AppendOptions{})
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("append with a wrong secret: %v, want a 403", err)
	}
	if reqs := s.all(); len(reqs) != 1 || reqs[0].verified {
		t.Fatalf("requests %+v, want one, refused", reqs)
	}
	if tail, err := client.New(url, testSigner(testCreds).Option()); err == nil {
		if tl, err := tail.Tail(t.Context(), "p0"); err == nil {
			t.Fatalf("the refused append landed: tail %+v", tl)
		}
	}
}

// TestSigV4NoRegion: a host that names no region, without a configured
// one, fails before sending, as unauthorized, without retries.
func TestSigV4NoRegion(t *testing.T) {
	url, s := apiServer(t, nil)
	sg := New(aws.Config{Credentials: credentials.StaticCredentialsProvider{Value: testCreds}})
	c, err := client.New(url, sg.Option())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Tail(t.Context(), "p0")
	if !errors.Is(err, ErrNoRegion) || !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("tail: %v, want ErrNoRegion and ErrUnauthorized", err)
	}
	if n := len(s.all()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

// TestSigV4TransportBodies: Transport signs a streamed body (no GetBody,
// unknown length) and an empty one, and leaves the caller's request as
// it was.
func TestSigV4TransportBodies(t *testing.T) {
	var got []string
	var mu sync.Mutex
	hs := httptest.NewServer(sigv4test.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	}), testCreds, testRegion))
	t.Cleanup(hs.Close)
	hc := &http.Client{Transport: &Transport{Signer: testSigner(testCreds)}}

	pr, pw := io.Pipe()
	go func() {
		for _, s := range []string{"stream", "ed ", "body"} {
			_, _ = pw.Write([]byte(s))
		}
		pw.Close()
	}()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", hs.URL+"/v1/x?a=b%20c", pr)
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("streamed body: status %d", res.StatusCode)
	}
	if req.Header.Get("Authorization") != "" {
		t.Error("Transport changed the caller's request")
	}
	for _, body := range []io.Reader{nil, http.NoBody} {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", hs.URL+"/v1/empty", body)
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("empty body: status %d", res.StatusCode)
		}
	}
	if len(got) != 3 || got[0] != "streamed body" || got[1] != "" || got[2] != "" {
		t.Fatalf("bodies received %q", got)
	}

	// And a tampered body fails the check: the hash is in the signature.
	wrongBody := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if err := testSigner(testCreds).Sign(r); err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(strings.NewReader("tampered"))
		r.ContentLength = int64(len("tampered"))
		return http.DefaultTransport.RoundTrip(r)
	})}
	req, _ = http.NewRequestWithContext(t.Context(), "POST", hs.URL+"/v1/x", strings.NewReader("original"))
	res, err = wrongBody.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("tampered body: status %d, want 403", res.StatusCode)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestSigV4LoadProfile: Load takes credentials and region from a named
// profile of the shared files (the default chain), and they sign.
func TestSigV4LoadProfile(t *testing.T) {
	dir := t.TempDir()
	cfgFile, credFile := filepath.Join(dir, "config"), filepath.Join(dir, "credentials")
	if err := os.WriteFile(cfgFile, []byte("[profile cairn-test]\nregion = "+testRegion+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(credFile, []byte("[cairn-test]\naws_access_key_id = "+testCreds.AccessKeyID+
		"\naws_secret_access_key = "+testCreds.SecretAccessKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"AWS_CONFIG_FILE": cfgFile, "AWS_SHARED_CREDENTIALS_FILE": credFile,
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_EC2_METADATA_DISABLED": "true"} {
		t.Setenv(k, v)
	}
	s, err := Load(t.Context(), "cairn-test", "")
	if err != nil {
		t.Fatal(err)
	}
	if s.region != testRegion {
		t.Fatalf("region %q, want the profile's %q", s.region, testRegion)
	}
	url, seen := apiServer(t, nil)
	c, err := client.New(url, s.Option())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PChannels(t.Context()); err != nil {
		t.Fatalf("status with the profile's credentials: %v", err)
	}
	if r := seen.all(); len(r) != 1 || !r[0].verified {
		t.Fatalf("requests %+v", r)
	}
}

func TestRegionOf(t *testing.T) {
	for host, want := range map[string]string{
		"abcdef.lambda-url.eu-west-1.on.aws":     "eu-west-1",
		"abcdef.lambda-url.us-east-2.on.aws:443": "us-east-2",
		"127.0.0.1:7070":                         "",
		"lambda-url.example.com":                 "",
		"x.lambda-url..on.aws":                   "",
		"x.lambda-url.eu-west-1.example.com":     "",
	} {
		if got := RegionOf(host); got != want {
			t.Errorf("RegionOf(%q) = %q, want %q", host, got, want)
		}
	}
}

// TestSigV4RegionFromFunctionURL: a request to a Function URL is signed
// for the region its host names, whatever region is configured. The
// transport dials the local server for the Function URL's host.
func TestSigV4RegionFromFunctionURL(t *testing.T) {
	url, seen := apiServer(t, nil)
	addr := strings.TrimPrefix(url, "http://")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	s := New(aws.Config{Region: "us-east-1", Credentials: credentials.StaticCredentialsProvider{Value: testCreds}})
	c, err := client.New("http://abcdef.lambda-url."+testRegion+".on.aws/", s.Option(), client.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PChannels(t.Context()); err != nil {
		t.Fatalf("status through the Function URL: %v", err)
	}
	if r := seen.all(); len(r) != 1 || !r[0].verified || !strings.Contains(r[0].auth, "/"+testRegion+"/lambda/") {
		t.Fatalf("requests %+v, want one signed for %s", r, testRegion)
	}
}
