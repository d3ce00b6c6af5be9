package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestCLITrim: pchannel trim and vchannel trim; consume from below the
// trim point fails with code truncated and says which --from to use;
// --from after:id: resumes after a message.
func TestCLITrim(t *testing.T) {
	url := apiServer(t, "")
	run, fails, matches := cliHelpers(t, url)

	run("", "vchannel", "create", "orders", "--pchannel", "p1")
	out, _ := run("a\nb\nc\nd\n", "produce", "--vchannel", "orders")
	ids := regexp.MustCompile(`id:\d+\.\d+`).FindAllString(out, -1)
	if len(ids) != 4 {
		t.Fatalf("produce: %s", out)
	}
	out, _ = run("", "pchannel", "trim", "p1", "--before", ids[1])
	matches("pchannel trim", out, `^PCHANNEL +EARLIEST\np1 +`+regexp.QuoteMeta(ids[1])+`\n$`)
	out, _ = run("", "pchannel", "trim", "p1", "--before", ids[0])
	matches("a lower trim", out, `(?m)^p1 +`+regexp.QuoteMeta(ids[1])+`$`)

	_, _, err := runCLI(t, "", "consume", "--vchannel", "orders", "--from", ids[0], "--server", url)
	e := explain(err)
	if e.Code != "truncated" || e.Earliest != ids[1] || !strings.Contains(e.Message, "--from "+ids[1]) || e.Exit != exitFailed {
		t.Fatalf("consume below the trim point: %+v (%v)", e, err)
	}
	out, _ = run("", "consume", "--vchannel", "orders")
	matches("consume after the trim", out, `^id:\S+ orders b\nid:\S+ orders c\nid:\S+ orders d\n$`)
	out, _ = run("", "consume", "--vchannel", "orders", "--from", "after:"+ids[2])
	matches("consume after:", out, `^id:\S+ orders d\n$`)

	out, _ = run("", "vchannel", "trim", "orders", "--before", ids[3], "-o", "json")
	matches("vchannel trim", out, `"earliest":"`+regexp.QuoteMeta(ids[3])+`"`)
	out, _ = run("", "consume", "--vchannel", "orders")
	matches("consume after the vchannel trim", out, `^id:\S+ orders d\n$`)

	fails("--before is required", "pchannel", "trim", "p1")
	fails("invalid", "pchannel", "trim", "p1", "--before", "latest")
	fails("unknown_vchannel", "vchannel", "trim", "nope", "--before", ids[0])
}

// TestCLIRetention: retention policies set and shown by pchannel
// describe and vchannel describe.
func TestCLIRetention(t *testing.T) {
	url := apiServer(t, "")
	run, fails, matches := cliHelpers(t, url)
	run("", "vchannel", "create", "orders", "--pchannel", "p1")
	run("a\nb\n", "produce", "--vchannel", "orders")

	out, _ := run("", "pchannel", "retention", "p1", "--max-age", "1h", "--max-bytes", "1000")
	matches("pchannel retention", out, `^NAME +MAX_AGE +MAX_BYTES +EARLIEST +BYTES_HELD\np1 +1h0m0s +1000 +id:0\.0 +0\n$`)
	out, _ = run("", "pchannel", "describe", "p1")
	matches("pchannel describe", out, `(?m)^retention +max_age=1h0m0s max_bytes=1000$`)
	matches("pchannel describe", out, `(?m)^earliest +id:0\.0$`)
	matches("pchannel describe", out, `(?m)^bytes_held +0$`)
	fails("unknown_pchannel", "pchannel", "describe", "p9")

	run("", "vchannel", "retention", "orders", "--max-bytes", "10")
	out, _ = run("", "vchannel", "describe", "orders")
	matches("vchannel describe", out, `(?m)^retention +max_bytes=10$`)
	matches("vchannel describe", out, `(?m)^trimmed_before +-$`)
	fails("invalid", "vchannel", "retention", "orders", "--max-bytes", "-1")
}
