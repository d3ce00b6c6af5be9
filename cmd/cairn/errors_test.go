package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/client"
)

// runMain runs cairn as main does and returns stdout, stderr and the exit
// status.
func runMain(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestErrorReports: every error is one sentence on standard error (the
// server's message, not the layers' wrapping), the JSON error object with
// --output json, and an exit status by kind.
func TestErrorReports(t *testing.T) {
	url := apiServer(t, "")
	for _, c := range []struct {
		name   string
		args   []string
		exit   int
		stderr string // exactly, in text
	}{
		{"unknown vchannel", []string{"vchannel", "describe", "nosuch", "--server", url}, exitNotFound, "cairn: no such vchannel: nosuch\n"},
		{"consume unknown vchannel", []string{"consume", "--vchannel", "nosuch", "--server", url}, exitNotFound, "cairn: no such vchannel: nosuch\n"},
		{"consume unknown pchannel", []string{"consume", "--pchannel", "nosuch", "--server", url}, exitNotFound, "cairn: pchannel \"nosuch\" is not one of the configured pchannels (p0, p1, p2, p3)\n"},
		{"consume unwritten pchannel", []string{"consume", "--pchannel", "p3", "--server", url}, exitNotFound, "cairn: pchannel \"p3\" has never been written\n"},
		{"invalid name", []string{"vchannel", "create", "-bad", "--server", url}, exitUsage, ""},
		{"bad flag value", []string{"consume", "--pchannel", "p0", "--max", "-1", "--server", url}, exitUsage, "cairn: --max must be ≥ 0 and --wait positive\nRun 'cairn consume --help' for usage.\n"},
		{"unknown flag", []string{"consume", "--colour", "--server", url}, exitUsage, "cairn: unknown flag: --colour\nRun 'cairn consume --help' for usage.\n"},
		{"unknown command", []string{"consoom"}, exitUsage, "cairn: unknown command \"consoom\" for \"cairn\"\nRun 'cairn --help' for usage.\n"},
		{"unreachable", []string{"status", "--server", "http://127.0.0.1:1"}, exitUnavailable, "cairn: cannot reach the server at 127.0.0.1:1: connect: connection refused\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, code := runMain(t, "", c.args...)
			if code != c.exit {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.exit, errOut)
			}
			if c.stderr != "" && errOut != c.stderr {
				t.Fatalf("stderr %q, want %q", errOut, c.stderr)
			}
			if strings.Count(errOut, "cairn:") != 1 || strings.Contains(errOut, "resume") {
				t.Fatalf("stderr %q: want one error sentence", errOut)
			}
		})
	}

	_, errOut, code := runMain(t, "", "consume", "--vchannel", "nosuch", "--server", url, "--output", "json")
	var e errorOut
	if err := json.Unmarshal([]byte(errOut), &e); err != nil || code != exitNotFound {
		t.Fatalf("--output json: exit %d, stderr %q (%v)", code, errOut, err)
	}
	if e != (errorOut{Code: "unknown_vchannel", Message: "no such vchannel: nosuch", Status: 404, Exit: exitNotFound}) {
		t.Fatalf("--output json error %+v", e)
	}
}

// TestExplainExitStatuses: the exit status of each kind of failure.
func TestExplainExitStatuses(t *testing.T) {
	for _, c := range []struct {
		err  error
		exit int
	}{
		{&client.Error{Status: 500, Code: "internal", Message: "internal error (ref abc)", Ref: "abc"}, exitInternal},
		{&client.Error{Status: 503, Code: "lease_held", Message: "held"}, exitUnavailable},
		{fmt.Errorf("%w after 3 attempts: %w", client.ErrUnavailable, &client.Error{Status: 503, Code: "lease_held"}), exitUnavailable},
		{&client.Error{Status: 404, Code: "unknown_snapshot"}, exitNotFound},
		{&client.Error{Status: 400, Code: "invalid"}, exitUsage},
		{&client.Error{Status: 409, Code: "exists"}, exitFailed},
		{usagef("--x"), exitUsage},
	} {
		if got := explain(c.err).Exit; got != c.exit {
			t.Errorf("%v: exit %d, want %d", c.err, got, c.exit)
		}
	}
}

// TestProduceLineLimits: a line as large as the server's batch limit
// allows is produced; one over it is refused naming its line, and the
// summary counts the lines read.
func TestProduceLineLimits(t *testing.T) {
	url := apiServer(t, "")
	big := strings.Repeat("b", 700<<10) // over the SDK's default batch of 512 KiB
	huge := strings.Repeat("h", 1<<20)  // over the server's 1 MiB
	out, errOut, code := runMain(t, "small\n"+big+"\n"+huge+"\nnever\n", "produce", "--server", url, "--pchannel", "p0", "--vchannel", "v0")
	if code != exitFailed {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitFailed, errOut)
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Fatalf("%d acks, want 2: %q", n, out)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "produced 2 of 3 messages to p0 ") ||
		!strings.HasPrefix(lines[1], "cairn: line 3: ") || !strings.Contains(lines[1], "too large") {
		t.Fatalf("stderr %q", errOut)
	}
}

// TestConsumePastTail: a start position past the tail says so, for a read
// and for --follow (which then waits, here until the test's deadline).
func TestConsumePastTail(t *testing.T) {
	url := apiServer(t, "")
	if _, errOut, code := runMain(t, "a\nb\n", "produce", "--server", url, "--pchannel", "p0", "--vchannel", "v0"); code != 0 {
		t.Fatalf("produce: %d %s", code, errOut)
	}
	out, errOut, code := runMain(t, "", "consume", "--server", url, "--pchannel", "p0", "--from", "id:999.0")
	if code != 0 || out != "" || !strings.HasPrefix(errOut, "--from id:999.0 is past the tail of pchannel p0 (its next message will be id:") ||
		!strings.Contains(errOut, "nothing to read there yet") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	run(ctx, []string{"consume", "--server", url, "--pchannel", "p0", "--from", "id:999.0", "--follow", "--wait", "100ms"}, strings.NewReader(""), &stdout, &stderr)
	if !strings.Contains(stderr.String(), "past the tail of pchannel p0") || !strings.Contains(stderr.String(), "waiting until the pchannel grows that far") {
		t.Fatalf("--follow stderr %q", stderr.String())
	}
	// At the tail is no news: the next message lands there.
	if _, errOut, _ := runMain(t, "", "consume", "--server", url, "--pchannel", "p0", "--from", "latest"); strings.Contains(errOut, "past the tail") {
		t.Fatalf("latest: %q", errOut)
	}
}
