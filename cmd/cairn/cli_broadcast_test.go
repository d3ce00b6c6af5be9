package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCLIBroadcast: broadcast send, list and describe in text and JSON; a
// copy read back by consume; sending again; a sync ack pending until a
// flush; the refusals.
func TestCLIBroadcast(t *testing.T) {
	url := apiServer(t, "")
	runIn, fails, matches := cliHelpers(t, url)
	run := func(args ...string) (string, string) { t.Helper(); return runIn("", args...) }
	run("vchannel", "create", "orders", "--pchannel", "p0")
	run("vchannel", "create", "payments", "--pchannel", "p1")

	send := []string{"broadcast", "send", "--id", "ddl-1", "--vchannel", "payments", "--vchannel", "orders",
		"--payload", "create index", "--property", "kind=ddl"}
	out, _ := run(send...)
	matches("send", out, `(?m)^broadcast +ddl-1$`)
	matches("send", out, `(?m)^state +done$`)
	matches("send", out, `(?m)^acked +2/2$`)
	matches("send", out, `(?m)^target +orders p0 id:\d+\.\d+$`)
	matches("send", out, `(?m)^target +payments p1 id:\d+\.\d+$`)
	out, errOut := run("consume", "--vchannel", "orders")
	matches("consume", out, `^id:\d+\.0 orders create index\n$`)
	matches("consume summary", errOut, `^consumed 1 messages from vchannel orders`)
	out, _ = run("consume", "--vchannel", "payments", "-o", "json")
	ms := consumed(t, out)
	if len(ms) != 1 || ms[0].Type != "broadcast" || ms[0].BroadcastID != "ddl-1" || ms[0].Properties["kind"] != "ddl" {
		t.Fatalf("consume payments, json: %+v", ms)
	}

	// Sending again shows the same task and adds no copy.
	out, _ = run(append(send, "-o", "json")...)
	var task struct {
		ID, State string
		Version   uint64
	}
	if json.Unmarshal([]byte(out), &task) != nil || task.ID != "ddl-1" || task.State != "done" {
		t.Fatalf("send again, json: %s", out)
	}
	out, _ = run("consume", "--vchannel", "orders")
	if strings.Count(out, "create index") != 1 {
		t.Fatalf("orders after sending again:\n%s", out)
	}
	fails("exists", "broadcast", "send", "--id", "ddl-1", "--vchannel", "orders", "--payload", "drop index")
	fails("unknown_vchannel", "broadcast", "send", "--id", "b2", "--vchannel", "nope")
	fails("want KEY=VALUE", "broadcast", "send", "--id", "b2", "--vchannel", "orders", "--property", "kind")
	fails(`required flag(s) "id" not set`, "broadcast", "send", "--vchannel", "orders")
	fails("unknown_broadcast", "broadcast", "describe", "b2")

	// A sync ack: pending until the pchannel is flushed, then sent again.
	sync := []string{"broadcast", "send", "--id", "trunc", "--vchannel", "orders", "--ack", "sync", "--wait", "200ms"}
	out, errOut = run(sync...)
	matches("sync send", out, `(?m)^state +pending$`)
	matches("sync send", out, `(?m)^acked +0/1$`)
	matches("sync send", out, `(?m)^target +orders p0 id:\d+\.\d+$`)
	matches("sync send stderr", errOut, `^broadcast trunc is still pending; the server finishes it \(cairn broadcast describe trunc\)\n$`)
	run("pchannel", "flush", "p0")
	out, _ = run(sync...)
	matches("sync send after the flush", out, `(?m)^state +done$`)
	matches("sync send after the flush", out, `(?m)^target +orders p0 id:\d+\.\d+ synced$`)

	out, _ = run("broadcast", "send", "--id", "later", "--vchannel", "payments", "--wait", "0")
	matches("send --wait 0", out, `(?m)^target +payments p1 pending$`)
	out, _ = run("broadcast", "list")
	matches("list", out, `^BROADCAST +STATE +ACK +ACKED +CREATED +FINISHED\n`+
		`ddl-1 +done +fast +2/2 +\S+ +\S+\nlater +pending +fast +0/1 +\S+ +-\ntrunc +done +sync +1/1 +\S+ +\S+\n$`)
	out, _ = run("broadcast", "list", "--state", "pending", "-o", "json")
	var list struct {
		Broadcasts []struct{ ID string } `json:"broadcasts"`
	}
	if json.Unmarshal([]byte(out), &list) != nil || len(list.Broadcasts) != 1 || list.Broadcasts[0].ID != "later" {
		t.Fatalf("list pending, json: %s", out)
	}
	out, _ = run("broadcast", "describe", "trunc")
	matches("describe", out, `(?m)^ack +sync$`)
	matches("describe", out, `(?m)^error +-$`)
}
