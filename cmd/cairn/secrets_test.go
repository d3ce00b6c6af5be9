package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/testkit"
)

// TestServeLogsNoSecrets runs the cairn binary at debug level with a bearer
// token and S3 credentials, and checks that its whole output — start-up,
// authorized, refused and failing requests, a store outage under it, and
// shutdown — never shows the token or the secret key; nor does the error of
// a start-up whose secret key the store refuses (RELIABILITY.md, "Access").
func TestServeLogsNoSecrets(t *testing.T) {
	const (
		token       = "SECRET-TOKEN-VALUE"
		refusedKey  = "SECRET-KEY-VALUE"
		goodAppend  = `{"messages":[{"vchannel":"v0","payload":"aGk="}]}`
		appendPath  = "/v1/pchannels/p0/append"
		bearerToken = "Bearer " + token
	)
	bin := buildCairn(t)
	// A MinIO of its own, so that the outage below disturbs no other test.
	// Its root password is the secret key the server holds.
	mc, err := miniotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Stop() })
	user, secretKey := mc.Credentials()
	vars := map[string]string{
		"CAIRN_S3_ENDPOINT":     mc.Endpoint(),
		"CAIRN_S3_BUCKET":       "secrets",
		"AWS_ACCESS_KEY_ID":     user,
		"AWS_SECRET_ACCESS_KEY": secretKey,
		"AWS_REGION":            "us-east-1",
		"CAIRN_LOG_LEVEL":       "debug",
		"CAIRN_LEASE_TTL":       "2s",
	}
	srv := startChild(t, bin, []string{"serve", "--addr", "127.0.0.1:0", "--store", "s3", "--create-bucket", "--token", token}, childEnv(vars))
	base := "http://" + srv.addr

	send := func(method, path, authz, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		hc := &http.Client{Timeout: 90 * time.Second}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, c := range []struct {
		what, method, path, authz, body string
		status                          int
	}{
		{"health without a token", "GET", "/healthz", "", "", 200},
		{"append", "POST", appendPath, bearerToken, goodAppend, 200},
		{"read", "GET", "/v1/pchannels/p0/messages?from=earliest", bearerToken, "", 200},
		{"metrics", "GET", "/metrics", bearerToken, "", 200},
		{"no token", "POST", appendPath, "", goodAppend, 401},
		{"a longer token", "POST", appendPath, bearerToken + "-OLD", goodAppend, 401},
		{"the token without its scheme", "POST", appendPath, token, goodAppend, 401},
		{"the token as Basic", "GET", "/v1/leases", "Basic " + token, "", 401},
		{"malformed append", "POST", appendPath, bearerToken, `{"messages":[`, 400},
		{"unknown pchannel", "GET", "/v1/pchannels/nowhere/tail", bearerToken, "", 404},
		{"unknown route", "GET", "/v2/secrets", bearerToken, "", 404},
	} {
		if status, body := send(c.method, c.path, c.authz, c.body); status != c.status {
			t.Fatalf("%s: %d %s, want %d", c.what, status, body, c.status)
		}
		if c.what == "metrics" {
			if status, body := send("GET", "/metrics", bearerToken, ""); status != 200 || strings.Contains(body, token) || strings.Contains(body, secretKey) {
				t.Fatalf("/metrics (%d) shows a secret", status)
			}
		}
	}

	// The store goes away: requests fail on store errors, which the server
	// logs with the S3 client's messages.
	if err := mc.Kill(); err != nil {
		t.Fatal(err)
	}
	if status, body := send("POST", "/v1/pchannels/p1/append", bearerToken, goodAppend); status < 500 {
		t.Fatalf("append with the store down: %d %s, want a 5xx", status, body)
	}
	if status, body := send("GET", "/v1/pchannels/p0/messages?from=earliest", bearerToken, ""); status < 500 {
		t.Fatalf("read with the store down: %d %s, want a 5xx", status, body)
	}
	if err := mc.Restart(); err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyNil(t, 60*time.Second, "an append once the store is back", func() error {
		if status, body := send("POST", appendPath, bearerToken, goodAppend); status != 200 {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
	if err := srv.stop(t); err != nil {
		t.Fatalf("cairn serve after SIGTERM: %v", err)
	}

	out := srv.out.String()
	// The output must hold the events whose logging could leak: else this
	// test would pass on a silent server.
	for _, want := range []string{"listening on", "request failed", "code=malformed", "status=503", "leases released"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q: the test no longer sees what it checks:\n%s", want, out)
		}
	}
	assertNoSecret(t, "cairn serve", out, map[string]string{"the bearer token": token, "the S3 secret key": secretKey})

	// A secret key the store refuses: serve stops at start-up with the
	// store's error, which must not repeat the key.
	vars["AWS_SECRET_ACCESS_KEY"] = refusedKey
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--addr", "127.0.0.1:0", "--store", "s3", "--token", token)
	cmd.Env, cmd.SysProcAttr = childEnv(vars), childProcAttr()
	refused, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("cairn serve with a refused secret key: %v (want exit status 1)\n%s", err, refused)
	}
	if !strings.Contains(string(refused), "cairn: ") {
		t.Errorf("cairn serve with a refused secret key printed no error:\n%s", refused)
	}
	assertNoSecret(t, "cairn serve with a refused key", string(refused), map[string]string{"the bearer token": token, "the S3 secret key": refusedKey})
}

// assertNoSecret fails t for each secret that appears in out, showing the
// line it is on.
func assertNoSecret(t *testing.T, who, out string, secrets map[string]string) {
	t.Helper()
	for name, s := range secrets {
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, s) {
				t.Errorf("%s printed %s: %s", who, name, line)
				break
			}
		}
	}
}
