package lambdaemu_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/lambdaemu/lambdaemutest"
)

// TestFunctionURLEvent checks the event a request becomes (payload 2.0:
// lower-case headers, cookies apart, query parameters joined, text bodies
// as text and binary ones base64) and how a buffered answer maps back.
func TestFunctionURLEvent(t *testing.T) {
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe")})

	req, _ := http.NewRequestWithContext(t.Context(), "POST", f.URL()+"/echo?x=1&x=2&y=%2F", strings.NewReader(`{"a":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Custom", "v")
	req.Header.Add("Cookie", "c1=1; c2=2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("X-Pid") == "" || resp.Header.Get("Set-Cookie") != "a=1" {
		t.Fatalf("echo: %d %v", resp.StatusCode, resp.Header)
	}
	var ev events.LambdaFunctionURLRequest
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("echo body %q: %v", body, err)
	}
	switch {
	case ev.Version != "2.0", ev.RawPath != "/echo", ev.RawQueryString != "x=1&x=2&y=%2F":
		t.Fatalf("event %+v", ev)
	case ev.QueryStringParameters["x"] != "1,2" || ev.QueryStringParameters["y"] != "/":
		t.Fatalf("query parameters %v", ev.QueryStringParameters)
	case ev.Headers["x-custom"] != "v" || ev.Headers["content-type"] != "application/json" || ev.Headers["cookie"] != "":
		t.Fatalf("headers %v", ev.Headers)
	case len(ev.Cookies) != 2 || ev.Cookies[0] != "c1=1" || ev.Cookies[1] != "c2=2":
		t.Fatalf("cookies %q", ev.Cookies)
	case ev.IsBase64Encoded || ev.Body != `{"a":1}`:
		t.Fatalf("text body %q base64 %v", ev.Body, ev.IsBase64Encoded)
	case ev.RequestContext.HTTP.Method != "POST" || ev.RequestContext.RequestID == "" || ev.RequestContext.AccountID != lambdaemu.AccountID:
		t.Fatalf("request context %+v", ev.RequestContext)
	case ev.RequestContext.RequestID != resp.Header.Get("X-Amzn-Requestid"):
		t.Fatalf("request id %q, header %q", ev.RequestContext.RequestID, resp.Header.Get("X-Amzn-Requestid"))
	}

	bin := []byte{0, 1, 2, 0xff}
	r := do(t, "PUT", f.URL()+"/echo", "application/octet-stream", bin)
	want(t, "binary echo", r, 201)
	if err := json.Unmarshal([]byte(r.body), &ev); err != nil {
		t.Fatal(err)
	}
	if got, _ := base64.StdEncoding.DecodeString(ev.Body); !ev.IsBase64Encoded || string(got) != string(bin) {
		t.Fatalf("binary body %q base64 %v", ev.Body, ev.IsBase64Encoded)
	}

	// A JSON answer that is not a LambdaFunctionURLResponse is the body.
	r = get(t, f.URL()+"/raw")
	want(t, "raw JSON answer", r, 200)
	if r.header.Get("Content-Type") != "application/json" || !strings.HasPrefix(r.body, `{"n":`) {
		t.Fatalf("raw answer %v %q", r.header, r.body)
	}
}

// TestStreamedResponse checks the streaming mode lambdaurl uses: prelude,
// eight NULs, body; and a stream the runtime cuts with its error trailer
// cuts the client's response.
func TestStreamedResponse(t *testing.T) {
	ev := newEvents()
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), Hooks: ev.hooks()})
	r := get(t, f.URL()+"/stream")
	want(t, "stream", r, 202)
	if r.body != "streamed body\n" || r.header.Get("Content-Type") != "text/plain" || r.header.Get("X-Pid") == "" {
		t.Fatalf("stream: %v %q", r.header, r.body)
	}
	ev.wait(t, "frozen", 1)

	resp, err := http.Get(f.URL() + "/cut")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut stream read %q with error %v, want an unexpected EOF", b, err)
	}
	ev.wait(t, "frozen", 2)
	if s := f.Stats(); s.Total.FunctionErrors != 1 || s.Total.Invocations != 2 || s.Total.ColdStarts != 1 {
		t.Fatalf("stats %+v", s.Total)
	}
}

// TestFunctionError checks that a runtime's .../error answers 502 with a
// JSON body and keeps the environment warm, and that Invoke reports it.
func TestFunctionError(t *testing.T) {
	ev := newEvents()
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), Hooks: ev.hooks()})
	r := get(t, f.URL()+"/error")
	want(t, "function error", r, 502)
	if r.body != `{"Message":"Internal Server Error"}` || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("error answer %v %q", r.header, r.body)
	}
	ev.wait(t, "frozen", 1)
	want(t, "after the error", get(t, f.URL()+"/"), 200)
	ev.wait(t, "frozen", 2)

	res, err := f.Invoke(t.Context(), []byte("not an event"))
	if !errors.Is(err, lambdaemu.ErrFunction) || !strings.Contains(string(res.Payload), "errorMessage") {
		t.Fatalf("Invoke with a bad event: %q %v", res.Payload, err)
	}
	if s := f.Stats(); s.Total.FunctionErrors != 2 || s.Total.ColdStarts != 1 || s.Total.Crashes != 0 {
		t.Fatalf("stats %+v", s.Total)
	}
}

// TestRequestTooLarge checks the 6 MB request limit.
func TestRequestTooLarge(t *testing.T) {
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe")})
	r := do(t, "POST", f.URL()+"/echo", "application/octet-stream", make([]byte, lambdaemu.MaxRequestBytes+1))
	want(t, "7 MB request", r, 413)
	if s := f.Stats(); s.Total.Invocations != 0 {
		t.Fatalf("a refused request was invoked: %+v", s.Total)
	}
}

// TestEventHook checks Hooks.Event: here it sends a JSON body
// base64-encoded, which the function gets decoded by aws-lambda-go.
func TestEventHook(t *testing.T) {
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), Hooks: lambdaemu.Hooks{
		Event: func(ev *events.LambdaFunctionURLRequest) {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString([]byte(ev.Body)), true
		},
	}})
	r := do(t, "POST", f.URL()+"/echo", "application/json", []byte(`{"a":1}`))
	want(t, "echo", r, 201)
	var ev events.LambdaFunctionURLRequest
	if err := json.Unmarshal([]byte(r.body), &ev); err != nil {
		t.Fatal(err)
	}
	if got, _ := base64.StdEncoding.DecodeString(ev.Body); !ev.IsBase64Encoded || string(got) != `{"a":1}` {
		t.Fatalf("event body %q base64 %v", ev.Body, ev.IsBase64Encoded)
	}
}
