package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// TestServeRunsTheSystem: serve's node takes every pchannel of the set (its
// leases name the node, and locate gives serve's own address), a held
// pchannel is flushed by its flusher, a broadcast left pending is run by
// the broadcast loop, and a graceful stop releases every lease and stops
// the node's session.
func TestServeRunsTheSystem(t *testing.T) {
	dir := t.TempDir()
	base, banner, stop := startServe(t, serveOptions{addr: "127.0.0.1:0", store: "fs", dataDir: dir,
		pchannels: []string{"pa", "pb"}, system: systemOptions{flushInterval: 50 * time.Millisecond, flushMaxAge: time.Millisecond,
			broadcastInterval: 50 * time.Millisecond}}, nil)
	if !strings.Contains(banner, "pchannels: pa,pb") || !strings.Contains(banner, "node: serve-") {
		t.Fatalf("banner %q", banner)
	}

	// The balancer assigns both pchannels to the node, which opens their
	// writers: both leases become live, held by the node.
	var leases struct {
		Leases []struct {
			PChannel, Holder string
			Live             bool
		}
	}
	testkit.EventuallyNil(t, 30*time.Second, "the node holds pa and pb", func() error {
		code, body := call(t, "GET", base+"/v1/leases", "", "")
		if code != 200 || json.Unmarshal(body, &leases) != nil {
			t.Fatalf("leases: %d %s", code, body)
		}
		live := 0
		for _, l := range leases.Leases {
			if l.Live && strings.HasPrefix(l.Holder, "serve-") {
				live++
			}
		}
		if live != 2 {
			return fmt.Errorf("the node holds %+v", leases)
		}
		return nil
	})

	code, body := call(t, "POST", base+"/v1/vchannels", "", `{"name":"v0","pchannel":"pb"}`)
	if code != 200 {
		t.Fatalf("create vchannel: %d %s", code, body)
	}
	code, body = call(t, "POST", base+"/v1/vchannels", "", `{"name":"v1","pchannel":"p0"}`)
	if code != 404 || !strings.Contains(string(body), "unknown_pchannel") {
		t.Fatalf("create on a pchannel outside --pchannels: %d %s", code, body)
	}
	code, body = call(t, "GET", base+"/v1/vchannels/v0/location", "", "")
	var loc struct{ Node, Address string }
	if code != 200 || json.Unmarshal(body, &loc) != nil || loc.Address != base || !strings.HasPrefix(loc.Node, "serve-") {
		t.Fatalf("location: %d %s; want this server's address %s", code, body, base)
	}
	if code, body := call(t, "POST", base+"/v1/vchannels/v0/append", "", `{"messages":[{"payload":"aGk="}]}`); code != 200 {
		t.Fatalf("append: %d %s", code, body)
	}
	// pb's flusher flushes it (max age 1 ms) without being asked.
	testkit.EventuallyNil(t, 30*time.Second, "pb flushed", func() error {
		code, body := call(t, "GET", base+"/v1/pchannels", "", "")
		var st struct {
			PChannels []struct {
				PChannel   string
				Checkpoint uint64
			}
		}
		if code != 200 || json.Unmarshal(body, &st) != nil {
			t.Fatalf("status: %d %s", code, body)
		}
		i := slices.IndexFunc(st.PChannels, func(p struct {
			PChannel   string
			Checkpoint uint64
		}) bool {
			return p.PChannel == "pb"
		})
		if i < 0 || st.PChannels[i].Checkpoint == 0 {
			return fmt.Errorf("pb not flushed: %s", body)
		}
		return nil
	})

	// A sync-ack broadcast only persisted by its request (wait 0s): the
	// broadcast loop appends its copy, pb's flusher passes it, and the loop
	// marks it done.
	code, body = call(t, "POST", base+"/v1/broadcasts", "", `{"id":"b1","vchannels":["v0"],"payload":"Yg==","ack":"sync","wait":"0s"}`)
	if code != 202 || !strings.Contains(string(body), `"state":"pending"`) {
		t.Fatalf("broadcast: %d %s", code, body)
	}
	testkit.EventuallyNil(t, 30*time.Second, "the broadcast loop finishes b1", func() error {
		code, body := call(t, "GET", base+"/v1/broadcasts/b1", "", "")
		var task struct {
			State   string
			Targets []struct{ Synced bool }
		}
		if code != 200 || json.Unmarshal(body, &task) != nil {
			t.Fatalf("describe broadcast: %d %s", code, body)
		}
		if task.State != "done" || len(task.Targets) != 1 || !task.Targets[0].Synced {
			return fmt.Errorf("broadcast not finished by the loop: %s", body)
		}
		return nil
	})
	code, body = call(t, "GET", base+"/v1/vchannels/v0/messages?type=broadcast", "", "")
	if code != 200 || strings.Count(string(body), `"broadcast_id":"b1"`) != 1 {
		t.Fatalf("v0's broadcast copies: %d %s", code, body)
	}

	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	store, err := objstore.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"pa", "pb"} {
		obj, err := store.Get(t.Context(), segmentlog.Layout{}.Lease(p))
		if err != nil || !strings.Contains(string(obj.Body), `"released":true`) {
			t.Fatalf("lease of %s after stop: %s, %v", p, obj.Body, err)
		}
	}
	var sessions int
	err = store.List(t.Context(), "meta/nodes/", "", func(a objstore.Attrs) error {
		obj, err := store.Get(t.Context(), a.Key)
		if err != nil {
			return err
		}
		var s coordinator.Session
		if err := json.Unmarshal(obj.Body, &s); err != nil {
			return err
		}
		if !s.Stopped {
			t.Errorf("session %s not stopped after a graceful stop", s.Node)
		}
		sessions++
		return nil
	})
	if err != nil || sessions != 1 {
		t.Fatalf("sessions: %d, %v", sessions, err)
	}
}

// TestServeCompacts: a held pchannel's compactor runs beside its flusher;
// once the manifest names --compact-min-refs files it merges them, and
// every message still reads back once, in order.
func TestServeCompacts(t *testing.T) {
	dir := t.TempDir()
	base, _, _ := startServe(t, serveOptions{addr: "127.0.0.1:0", store: "fs", dataDir: dir,
		pchannels: []string{"pa"}, system: systemOptions{flushInterval: 20 * time.Millisecond, flushMaxAge: time.Millisecond,
			compactMinRefs: 8, compactInterval: 50 * time.Millisecond}}, nil)
	testkit.EventuallyNil(t, 60*time.Second, "create vchannel v0", func() error {
		if code, body := call(t, "POST", base+"/v1/vchannels", "", `{"name":"v0","pchannel":"pa"}`); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	store, err := objstore.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	// One message at a time, each flushed on its own: a manifest of many
	// one-message files, until the compactor has merged some. Each look
	// appends the next message and waits until pa's checkpoint passes it.
	sent := 0
	testkit.EventuallyNil(t, 60*time.Second, "a compaction", func() error {
		var res struct{ Acks []struct{ Offset uint64 } }
		testkit.EventuallyNil(t, 60*time.Second, fmt.Sprintf("append %d", sent), func() error {
			code, body := call(t, "POST", base+"/v1/vchannels/v0/append", "", fmt.Sprintf(`{"messages":[{"payload":%q}]}`, base64.StdEncoding.EncodeToString([]byte(fmt.Sprint(sent)))))
			if code != 200 || json.Unmarshal(body, &res) != nil || len(res.Acks) != 1 {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
		sent++
		var cp segmentlog.Checkpoint
		testkit.EventuallyNil(t, 60*time.Second, fmt.Sprintf("message %d flushed", sent-1), func() (err error) {
			cp, _, err = segmentlog.ReadCheckpoint(t.Context(), store, segmentlog.Layout{}, "pa")
			if err == nil && cp.C <= res.Acks[0].Offset {
				err = fmt.Errorf("pa's checkpoint is at %d, the message at %d", cp.C, res.Acks[0].Offset)
			}
			return err
		})
		if retired, err := snapshot.RetiredFiles(t.Context(), store, segmentlog.Layout{}, "pa"); err != nil || len(retired) == 0 {
			return fmt.Errorf("no compaction after %d flushed appends (%v): %+v", sent, err, cp.Segments)
		}
		return nil
	})
	code, body := call(t, "GET", base+"/v1/vchannels/v0/messages?max=10000", "", "")
	var rr struct{ Messages []struct{ Payload []byte } }
	if code != 200 || json.Unmarshal(body, &rr) != nil {
		t.Fatalf("read: %d %s", code, body)
	}
	if len(rr.Messages) != sent {
		t.Fatalf("read %d messages after compaction, sent %d", len(rr.Messages), sent)
	}
	for i, m := range rr.Messages {
		if string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q after compaction", i, m.Payload)
		}
	}
}

func TestServeRefusesBadSystemFlags(t *testing.T) {
	err := serve(t.Context(), serveOptions{addr: "127.0.0.1:0", store: "fs", dataDir: t.TempDir(), pchannels: []string{"p0", "../x"}},
		func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "pchannel") {
		t.Fatalf("serve --pchannels p0,../x: %v", err)
	}
}
