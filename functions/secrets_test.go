package functions_test

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"
)

// TestNodeLogsNoSecrets runs the node function's bootstrap at debug level
// and checks that its log (CloudWatch keeps it) never shows the S3 secret
// key: not at cold start, not on good, refused or failing invocations, not
// at SIGTERM; nor when the store refuses the key and every request fails
// on it (RELIABILITY.md, "Access").
func TestNodeLogsNoSecrets(t *testing.T) {
	env, _ := lambdaEnv(t)
	env["CAIRN_LOG_LEVEL"] = "debug"
	secretKey := env["AWS_SECRET_ACCESS_KEY"]

	node := startContainer(t, "node", "node-secrets", env)
	wantStatus(t, "append", node.mustCall(appendJSON("p0", "one")), 200)
	wantStatus(t, "read", node.mustCall(urlRequest{method: "GET", path: "/v1/pchannels/p0/messages", query: "from=earliest"}), 200)
	wantStatus(t, "malformed append", node.mustCall(urlRequest{method: "POST", path: "/v1/pchannels/p0/append",
		header: map[string]string{"Content-Type": "application/json"}, body: []byte(`{"messages":[`)}), 400)
	wantStatus(t, "unknown pchannel", node.mustCall(getReq("/v1/pchannels/nowhere/tail")), 404)
	node.reap() // SIGTERM, then SIGKILL after the grace
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if !node.waitLog(ctx, "shutdown complete") {
		t.Fatalf("no shutdown after SIGTERM:\n%s", node.log())
	}
	log := node.log()
	// The log must hold the events whose logging could leak: else this
	// test would pass on a silent function.
	for _, want := range []string{"writer opened", "request failed", `"code":"malformed"`} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q: the test no longer sees what it checks:\n%s", want, log)
		}
	}
	if strings.Contains(log, secretKey) {
		t.Errorf("the node function logged the S3 secret key:\n%s", log)
	}

	// A secret key the store refuses: the container's init fails on the
	// store probe (every request answers 502, as a Function URL does for a
	// function whose init failed), and neither answers nor log may repeat
	// the key.
	const refusedKey = "SECRET-KEY-VALUE"
	refused := maps.Clone(env)
	refused["AWS_SECRET_ACCESS_KEY"] = refusedKey
	bad := startContainer(t, "node", "node-refused-key", refused)
	for _, req := range []urlRequest{appendJSON("p0", "two"), {method: "GET", path: "/v1/pchannels/p0/messages", query: "from=earliest"}} {
		r, err := bad.call(req)
		switch {
		case err == nil && r.status < 500:
			t.Fatalf("%s %s with a refused secret key: %d %s, want a 5xx", req.method, req.path, r.status, r.body)
		case err != nil && !strings.Contains(err.Error(), "function error"):
			t.Fatal(err)
		case err != nil && strings.Contains(err.Error(), refusedKey), strings.Contains(string(r.body), refusedKey):
			t.Errorf("%s %s with a refused secret key answered the key: %v %s", req.method, req.path, err, r.body)
		}
	}
	log = bad.log()
	if !strings.Contains(log, "403") {
		t.Errorf("the log does not show the store's refusal: the test no longer sees what it checks:\n%s", log)
	}
	if strings.Contains(log, refusedKey) {
		t.Errorf("the node function logged the refused S3 secret key:\n%s", log)
	}
}
