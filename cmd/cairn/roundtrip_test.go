package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIRoundTripAgainstServe is issue #5's "done when": the built cairn
// binary, against a `cairn serve` child process, creates a vchannel,
// produces to it, consumes it back, snapshots it, restores the snapshot
// into a new vchannel and consumes that: the snapshot's messages exactly,
// byte for byte and in order, then the new vchannel's own.
func TestCLIRoundTripAgainstServe(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "cairn")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := append(os.Environ(), "CAIRN_TOKEN=", "CAIRN_SERVER=")
	server := startServeChild(t, bin, filepath.Join(dir, "data"), env)
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--server", server)...)
		cmd.Env, cmd.Stdin = env, strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("cairn %s: %v\n%s%s", strings.Join(args, " "), err, &out, &errOut)
		}
		return out.String()
	}
	consumeJSON := func(vchannel string) []messageOut {
		t.Helper()
		return consumed(t, run("", "consume", "--vchannel", vchannel, "--output", "json"))
	}

	run("", "vchannel", "create", "rt")
	var lines []string
	for i := range 300 {
		lines = append(lines, fmt.Sprintf("message %03d \t ünïcode", i))
	}
	acks := consumedAcks(t, run(strings.Join(lines, "\n")+"\n", "produce", "--vchannel", "rt", "--key-prefix", "rt", "--output", "json"))
	if len(acks) != len(lines) {
		t.Fatalf("%d acks for %d lines", len(acks), len(lines))
	}
	ms := consumeJSON("rt")
	if len(ms) != len(lines) {
		t.Fatalf("consumed %d messages, want %d", len(ms), len(lines))
	}
	for i, m := range ms {
		if string(m.Payload) != lines[i] || m.VChannel != "rt" || m.Position != acks[i].Position || m.Restored {
			t.Fatalf("message %d: %+v, want %q at %s", i, m, lines[i], acks[i].Position)
		}
	}

	var snap struct {
		State    string
		Messages int64
	}
	if err := json.Unmarshal([]byte(run("", "snapshot", "create", "rt-snap", "--vchannel", "rt", "--output", "json")), &snap); err != nil || snap.State != "committed" {
		t.Fatalf("snapshot: %+v, %v", snap, err)
	}
	run("after the snapshot\n", "produce", "--vchannel", "rt")

	var job struct{ State string }
	if err := json.Unmarshal([]byte(run("", "snapshot", "restore", "rt-snap", "--target", "rt=rt-copy", "--output", "json")), &job); err != nil || job.State != "done" {
		t.Fatalf("restore: %+v, %v", job, err)
	}
	restored := consumeJSON("rt-copy")
	if len(restored) != len(lines) {
		t.Fatalf("the restored vchannel has %d messages, want the snapshot's %d", len(restored), len(lines))
	}
	for i, m := range restored {
		if string(m.Payload) != lines[i] || m.VChannel != "rt-copy" || !m.Restored || m.Offset != ms[i].Offset || m.Index != ms[i].Index {
			t.Fatalf("restored message %d: %+v, want %q from %s", i, m, lines[i], ms[i].Position)
		}
	}
	run("its own\n", "produce", "--vchannel", "rt-copy")
	all := consumeJSON("rt-copy")
	if len(all) != len(lines)+1 || all[len(lines)].Restored || string(all[len(lines)].Payload) != "its own" {
		t.Fatalf("after the history, %d messages; last %+v", len(all), all[len(all)-1])
	}
	if got := consumeJSON("rt"); len(got) != len(lines)+1 {
		t.Fatalf("the source has %d messages, want %d", len(got), len(lines)+1)
	}
}
