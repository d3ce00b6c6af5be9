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
