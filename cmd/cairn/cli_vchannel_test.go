package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestCLIVChannelsSnapshotsRestore: vchannel, produce and consume by
// vchannel, pchannel flush, snapshot and restore, in text and JSON.
func TestCLIVChannelsSnapshotsRestore(t *testing.T) {
	url := apiServer(t, "")
	run, fails, matches := cliHelpers(t, url)

	out, _ := run("", "vchannel", "create", "orders", "--pchannel", "p1")
	matches("create", out, `(?m)^vchannel +orders$`)
	matches("create", out, `(?m)^pchannel +p1$`)
	matches("create", out, `(?m)^state +active$`)
	fails("binding_conflict", "vchannel", "create", "orders", "--pchannel", "p2")
	out, _ = run("", "vchannel", "list")
	matches("list", out, `^VCHANNEL +PCHANNEL +STATE +CREATED +PINS\norders +p1 +active +\S+ +-\n$`)
	out, _ = run("", "vchannel", "list", "--state", "dropped", "-o", "json")
	if strings.TrimSpace(out) != `{"vchannels":[]}` {
		t.Fatalf("list of dropped, json: %s", out)
	}
	out, _ = run("", "vchannel", "locate", "orders")
	matches("locate", out, `(?m)^orders +p1 +cli-test +- +1 +`)

	out, errOut := run("one\ntwo\n", "produce", "--vchannel", "orders")
	matches("produce by vchannel", out, `^id:\d+\.\d+ timetick:\d+\nid:\d+\.\d+ timetick:\d+\n$`)
	matches("produce summary", errOut, `^produced 2 of 2 messages to vchannel orders `)
	out, errOut = run("", "consume", "--vchannel", "orders")
	// One batch or two: the producer sends the first line at once and
	// batches the second with it only if it was queued in time.
	matches("consume by vchannel", out, `^id:\d+\.\d+ orders one\nid:\d+\.\d+ orders two\n$`)
	matches("consume summary", errOut, `^consumed 2 messages from vchannel orders; resume with --from id:`)
	fails("exactly one --vchannel", "consume")
	fails("unknown_vchannel", "produce", "--vchannel", "nope")

	out, _ = run("", "pchannel", "flush", "p1")
	matches("flush", out, `^PCHANNEL +ROUNDS +MESSAGES +SEGMENTS +CHECKPOINT\np1 +1 +\d+ +\d+ +[1-9]\d*\n$`)
	fails("unknown_pchannel", "pchannel", "flush", "p3")

	out, _ = run("", "snapshot", "create", "snap", "--vchannel", "orders")
	matches("snapshot create", out, `(?m)^state +committed$`)
	matches("snapshot create", out, `(?m)^vchannels +orders$`)
	fails("unknown_vchannel", "snapshot", "create", "snap", "--vchannel", "other")
	out, _ = run("", "snapshot", "list")
	matches("snapshot list", out, `^SNAPSHOT +STATE +VCHANNELS +MESSAGES +SEGMENTS +CREATED\nsnap +committed +orders +\d+ +\d+ +\S+\n$`)
	out, _ = run("", "snapshot", "describe", "snap", "-o", "json")
	var snap struct{ Name, State string }
	if json.Unmarshal([]byte(out), &snap) != nil || snap.Name != "snap" || snap.State != "committed" {
		t.Fatalf("describe -o json: %s", out)
	}
	fails("unknown_snapshot", "snapshot", "describe", "nope")

	// Standard output is no terminal here: progress comes as plain lines.
	out, _ = run("", "snapshot", "restore", "snap", "--target", "orders=orders-2", "--job-id", "r-1", "--poll", "10ms")
	matches("restore", out, `(?s)^(restore r-1: running \d+/\d+\n)*restore r-1: done (\d+)/\d+\n.*(?m)^state +done$`)
	matches("restore", out, `(?m)^targets +orders=orders-2$`)
	out, _ = run("", "snapshot", "restore", "snap", "--target", "orders=orders-2", "--job-id", "r-1", "-o", "json")
	var job struct{ ID, State string }
	if json.Unmarshal([]byte(out), &job) != nil || job.ID != "r-1" || job.State != "done" {
		t.Fatalf("restore again, json: %s", out)
	}
	fails("exists", "snapshot", "restore", "snap", "--target", "orders=orders")
	fails("want SOURCE=NEW", "snapshot", "restore", "snap", "--target", "orders")

	out, errOut = run("", "consume", "--vchannel", "orders-2")
	// The producer sends the first line at once: the two may land in one
	// batch or two.
	matches("consume restored", out, `^restored:\d+\.0 orders-2 one\nrestored:\d+\.[01] orders-2 two\n$`)
	matches("consume restored summary", errOut, `resume with --from id:\d+\.\d+ \(where its own messages start, after the restored history\)\n$`)
	run("three\n", "produce", "--vchannel", "orders-2")
	out, _ = run("", "consume", "--vchannel", "orders-2", "-o", "json")
	ms := consumed(t, out)
	if len(ms) != 3 || !ms[0].Restored || ms[2].Restored || string(ms[2].Payload) != "three" {
		t.Fatalf("restored, then own: %+v", ms)
	}

	out, _ = run("", "snapshot", "drop", "snap")
	if out != "dropped snapshot snap\n" {
		t.Fatalf("drop: %q", out)
	}
	out, _ = run("", "vchannel", "drop", "orders")
	matches("vchannel drop", out, `(?m)^state +dropped$`)
	fails("vchannel_dropped", "produce", "--vchannel", "orders")
}

// cliHelpers returns the checks the CLI tests share, against the server at
// url: run runs cairn with stdin and fails the test on an error; fails
// wants an error containing want; matches wants s to match the regular
// expression re.
func cliHelpers(t *testing.T, url string) (run func(stdin string, args ...string) (string, string),
	fails func(want string, args ...string), matches func(what, s, re string)) {
	run = func(stdin string, args ...string) (string, string) {
		t.Helper()
		out, errOut, err := runCLI(t, stdin, append(args, "--server", url)...)
		if err != nil {
			t.Fatalf("cairn %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out, errOut
	}
	fails = func(want string, args ...string) {
		t.Helper()
		_, _, err := runCLI(t, "x\n", append(args, "--server", url)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("cairn %s: %v, want an error with %q", strings.Join(args, " "), err, want)
		}
	}
	matches = func(what, s, re string) {
		t.Helper()
		if !regexp.MustCompile(re).MatchString(s) {
			t.Fatalf("%s:\n%s\ndoes not match %s", what, s, re)
		}
	}
	return run, fails, matches
}
