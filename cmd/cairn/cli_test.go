package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
)

// apiServer serves the HTTP API over a memory store, as serve builds it,
// until the test ends, and returns its URL.
func apiServer(t *testing.T, token string) string {
	t.Helper()
	sys, err := system.New(system.Config{
		Holder: "cli-test", LeaseTTL: 4 * time.Second, LeaseWait: 300 * time.Millisecond,
		CacheBytes: 4 << 20, TimeTickInterval: -1,
		Logger: slog.New(slog.NewTextHandler(&lockedBuffer{}, &slog.HandlerOptions{Level: slog.LevelError})),
	}, objstore.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Token: token}, sys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	})
	hs := httptest.NewServer(srv.Handler(api.AllRoles))
	t.Cleanup(hs.Close)
	// The commands fall back on these; the tests pass flags.
	t.Setenv("CAIRN_SERVER", "")
	t.Setenv("CAIRN_TOKEN", "")
	return hs.URL
}

// runCLI executes the cairn root command in-process with stdin and args,
// and returns what it wrote to stdout and stderr.
func runCLI(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// consumed decodes consume --output json.
func consumed(t *testing.T, out string) []messageOut {
	t.Helper()
	var ms []messageOut
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var m messageOut
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("consume output: %v\n%s", err, out)
		}
		ms = append(ms, m)
	}
	return ms
}

// TestCLIProduceConsumeRoundTrip: every line produced comes back once, in
// order, byte for byte; consume resumes from the position it reports.
func TestCLIProduceConsumeRoundTrip(t *testing.T) {
	url := apiServer(t, "")
	var lines []string
	for i := range 500 {
		lines = append(lines, fmt.Sprintf("line %03d\twith a tab, ünïcode and trailing space ", i))
	}
	// An empty line is an empty message; line 8 ends in \r\n; the last
	// line has no newline.
	lines[7] = ""
	lines[8] = "crlf line ending"
	input := strings.Join(lines[:8], "\n") + "\n" + lines[8] + "\r\n" + strings.Join(lines[9:], "\n")

	out, errOut, err := runCLI(t, input, "produce", "--server", url, "--pchannel", "p0", "--vchannel", "v0", "--key-prefix", "roundtrip", "--output", "json")
	if err != nil {
		t.Fatalf("produce: %v\n%s", err, errOut)
	}
	acks := consumedAcks(t, out)
	if len(acks) != len(lines) || !strings.Contains(errOut, "produced 500 of 500 messages to p0 (producer roundtrip") {
		t.Fatalf("produce printed %d acks, want %d; stderr %q", len(acks), len(lines), errOut)
	}

	out, errOut, err = runCLI(t, "", "consume", "--server", url, "--pchannel", "p0", "--output", "json")
	if err != nil {
		t.Fatalf("consume: %v\n%s", err, errOut)
	}
	ms := consumed(t, out)
	if len(ms) != len(lines) {
		t.Fatalf("consumed %d messages, want %d", len(ms), len(lines))
	}
	for i, m := range ms {
		if string(m.Payload) != lines[i] || m.VChannel != "v0" || m.Type != "data" {
			t.Fatalf("message %d: %q in %s (%s), want %q", i, m.Payload, m.VChannel, m.Type, lines[i])
		}
		if a := acks[i]; m.Position != a.Position || m.TimeTick != a.TimeTick || a.Line != i+1 {
			t.Fatalf("message %d at %s tick %d; its ack says line %d at %s tick %d", i, m.Position, m.TimeTick, a.Line, a.Position, a.TimeTick)
		}
		if m.Key == nil || m.Key.Producer != "roundtrip" || m.Key.Seq != uint64(i) {
			t.Fatalf("message %d key %+v", i, m.Key)
		}
	}
	last := ms[len(ms)-1]
	if resume := fmt.Sprintf("resume with --from id:%d.%d\n", last.Offset, last.Index+1); !strings.HasSuffix(errOut, resume) {
		t.Fatalf("consume stderr %q does not give the resume position", errOut)
	}

	// Text output, and --max with a resume from the printed position.
	out, errOut, err = runCLI(t, "", "consume", "--server", url, "--pchannel", "p0", "--max", "3")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s v0 %s\n%s v0 %s\n%s v0 %s\n", ms[0].Position, lines[0], ms[1].Position, lines[1], ms[2].Position, lines[2])
	if out != want {
		t.Fatalf("consume --max 3:\n%s\nwant\n%s", out, want)
	}
	from := strings.TrimSpace(errOut[strings.Index(errOut, "--from ")+len("--from "):])
	out, _, err = runCLI(t, "", "consume", "--server", url, "--pchannel", "p0", "--from", from, "--max", "1", "-o", "json")
	if got := consumed(t, out); err != nil || len(got) != 1 || got[0].Position != ms[3].Position {
		t.Fatalf("resume from %s: %+v, %v; want %s", from, got, err, ms[3].Position)
	}
}

func consumedAcks(t *testing.T, out string) []ackOut {
	t.Helper()
	var as []ackOut
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var a ackOut
		if err := dec.Decode(&a); err != nil {
			t.Fatalf("produce output: %v\n%s", err, out)
		}
		as = append(as, a)
	}
	return as
}

// TestCLIWindowedProduce: with several requests in flight every line still
// lands exactly once and in input order, and acks are printed in input
// order.
func TestCLIWindowedProduce(t *testing.T) {
	url := apiServer(t, "")
	var in strings.Builder
	for i := range 300 {
		fmt.Fprintf(&in, "w%03d\n", i)
	}
	out, errOut, err := runCLI(t, in.String(), "produce", "--server", url, "--pchannel", "p1", "--vchannel", "v0", "--window", "4", "-o", "json")
	if err != nil {
		t.Fatalf("produce: %v\n%s", err, errOut)
	}
	for i, a := range consumedAcks(t, out) {
		if a.Line != i+1 {
			t.Fatalf("ack %d is line %d", i, a.Line)
		}
	}
	out, _, err = runCLI(t, "", "consume", "--server", url, "--pchannel", "p1", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	got := consumed(t, out)
	if len(got) != 300 {
		t.Fatalf("%d lines came back, want each of 300 once", len(got))
	}
	for i, m := range got {
		if want := fmt.Sprintf("w%03d", i); string(m.Payload) != want {
			t.Fatalf("log position %d holds %q, want %q: out of input order", i, m.Payload, want)
		}
	}
}

// TestCLIAdminAndToken: the status table, leases and tail, with a token
// server; without the token the commands fail with unauthorized.
func TestCLIAdminAndToken(t *testing.T) {
	url := apiServer(t, "tok")
	if _, _, err := runCLI(t, "x\n", "produce", "--server", url, "--pchannel", "p2", "--vchannel", "v0"); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("produce without the token: %v", err)
	}
	t.Setenv("CAIRN_TOKEN", "tok") // the environment supplies it
	if _, errOut, err := runCLI(t, "x\ny\n", "produce", "--server", url, "--pchannel", "p2", "--vchannel", "v0"); err != nil {
		t.Fatalf("produce with $CAIRN_TOKEN: %v\n%s", err, errOut)
	}
	t.Setenv("CAIRN_TOKEN", "")
	for _, cmd := range []string{"status", "pchannel list"} {
		out, _, err := runCLI(t, "", append(strings.Fields(cmd), "--server", url, "--token", "tok")...)
		rows := strings.Split(strings.TrimSpace(out), "\n")
		if err != nil || len(rows) != 2 || !strings.HasPrefix(rows[0], "PCHANNEL  HOLDER    TERM  LIVE  TAIL  CHECKPOINT  EXPIRES") ||
			!strings.HasPrefix(rows[1], "p2        cli-test  1     yes") {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
	}
	out, _, err := runCLI(t, "", "status", "--server", url, "--token", "tok", "-o", "json")
	var st struct {
		PChannels []struct {
			PChannel string `json:"pchannel"`
			Tail     uint64 `json:"tail"`
		} `json:"pchannels"`
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || len(st.PChannels) != 1 || st.PChannels[0].PChannel != "p2" {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "", "pchannel", "tail", "p2", "--server", url, "--token", "tok")
	if err != nil || !strings.Contains(out, fmt.Sprintf("p2        %-11d  1     writer", st.PChannels[0].Tail)) {
		t.Fatalf("pchannel tail: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "", "lease", "describe", "p2", "--server", url, "--token", "tok")
	if err != nil || !strings.Contains(out, "holder     cli-test\n") {
		t.Fatalf("lease describe: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "", "lease", "list", "--server", url, "--token", "tok", "-o", "json")
	if err != nil || !strings.HasPrefix(out, `{"leases":[{"pchannel":"p2"`) {
		t.Fatalf("lease list -o json: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, "", "lease", "describe", "nope", "--server", url, "--token", "tok"); err == nil || !strings.Contains(err.Error(), "unknown_pchannel") {
		t.Fatalf("lease describe of an unknown pchannel: %v", err)
	}
}
