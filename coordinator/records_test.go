package coordinator

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// The stored formats of the registry, session and assignment records are
// pinned by golden files: a format-1 record must keep decoding to the same
// value forever.

func goldenVChannel() VChannel {
	return VChannel{
		Name: "orders-3", PChannel: "p-2", State: VChannelDropped,
		CreatedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Created:   &WALMark{ID: segmentlog.MessageID{Offset: 8}, TimeTick: segmentlog.TickOf(time.Date(2026, 3, 1, 12, 0, 0, 5e6, time.UTC))},
		DroppedAt: time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC),
		Dropped:   &WALMark{ID: segmentlog.MessageID{Offset: 4711, Index: 2}, TimeTick: segmentlog.TickOf(time.Date(2026, 3, 2, 9, 30, 0, 1e6, time.UTC)) + 1},
		Position:  Position{ID: segmentlog.MessageID{Offset: 4000}, TimeTick: segmentlog.TickOf(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)), Done: true},
		Pins:      []string{"nightly-0302", "weekly-09"},
		Version:   12,
	}
}

func goldenSession() Session {
	return Session{
		Node: "node-b", Address: "http://10.0.0.7:7070", Incarnation: "0195f1c2-7a3b-7c4d-8e5f-0123456789ab",
		Started:   time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC),
		Heartbeat: time.Date(2026, 3, 1, 12, 0, 3, 250e6, time.UTC),
		Version:   1201,
	}
}

func goldenAssignment() Assignment {
	return Assignment{
		PChannel: "p-2", State: PChannelUnassigning, Node: "node-c", From: "node-b",
		Since: time.Date(2026, 3, 1, 12, 0, 4, 0, time.UTC), Reason: "balance: node-b holds 3, node-c holds 1",
		Avoid: "node-d", AvoidUntil: time.Date(2026, 3, 1, 12, 2, 0, 0, time.UTC), Version: 9,
	}
}

func checkGolden(t *testing.T, file string, encoded []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, append(encoded, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(append(encoded, '\n'), want) {
		t.Fatalf("encoding changed:\n got %s\nwant %s", encoded, want)
	}
	return want
}

func TestRecordGolden(t *testing.T) {
	t.Run("vchannel", func(t *testing.T) {
		b, err := encodeVChannel(goldenVChannel())
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeVChannel("orders-3", checkGolden(t, "vchannel_v1.json", b))
		if err != nil || !reflect.DeepEqual(got, goldenVChannel()) {
			t.Fatalf("decoded %+v, %v\nwant    %+v", got, err, goldenVChannel())
		}
	})
	t.Run("session", func(t *testing.T) {
		b, err := encodeSession(goldenSession())
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeSession("node-b", checkGolden(t, "node_v1.json", b))
		if err != nil || got != goldenSession() {
			t.Fatalf("decoded %+v, %v\nwant    %+v", got, err, goldenSession())
		}
	})
	t.Run("assignment", func(t *testing.T) {
		b, err := encodeAssignment(goldenAssignment())
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeAssignment("p-2", checkGolden(t, "assignment_v1.json", b))
		if err != nil || got != goldenAssignment() {
			t.Fatalf("decoded %+v, %v\nwant    %+v", got, err, goldenAssignment())
		}
	})
}

func TestRecordRejects(t *testing.T) {
	v, _ := encodeVChannel(goldenVChannel())
	s, _ := encodeSession(goldenSession())
	a, _ := encodeAssignment(goldenAssignment())
	decoders := map[string]func(string, []byte) error{
		"vchannel":   func(n string, b []byte) error { _, err := decodeVChannel(n, b); return err },
		"session":    func(n string, b []byte) error { _, err := decodeSession(n, b); return err },
		"assignment": func(n string, b []byte) error { _, err := decodeAssignment(n, b); return err },
	}
	tests := []struct {
		kind, name, body, want string
	}{
		{"vchannel", "orders-3", strings.Replace(string(v), `"format":1`, `"format":2`, 1), "unknown format 2"},
		{"vchannel", "orders-3", strings.Replace(string(v), `"format":1,`, ``, 1), `no "format"`},
		{"vchannel", "orders-4", string(v), `names vchannel "orders-3"`},
		{"vchannel", "orders-3", strings.Replace(string(v), `"dropped"`, `"gone"`, 1), `unknown state "gone"`},
		{"vchannel", "orders-3", strings.Replace(string(v), `"p-2"`, `"../x"`, 1), `bad pchannel`},
		{"vchannel", "orders-3", `{"format":1,`, "vchannel record of orders-3"},
		{"session", "node-a", string(s), `names node "node-b"`},
		{"session", "node-b", strings.Replace(string(s), `"format":1`, `"format":0`, 1), "unknown format 0"},
		{"assignment", "p-2", strings.Replace(string(a), `"unassigning"`, `"moving"`, 1), `unknown state "moving"`},
		{"assignment", "p-2", strings.Replace(string(a), `"from":"node-b",`, ``, 1), `without a from node`},
		{"assignment", "p-2", strings.Replace(strings.Replace(string(a), `"node":"node-c",`, ``, 1), `"unassigning"`, `"assigned"`, 1), `without a node`},
		{"assignment", "p-3", string(a), `names pchannel "p-2"`},
		{"assignment", "p-2", ``, "assignment record of p-2"},
	}
	for _, tc := range tests {
		t.Run(tc.kind+"/"+tc.want, func(t *testing.T) {
			err := decoders[tc.kind](tc.name, []byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestKeys: the coordinator's keys join like segmentlog.Layout's, and only
// well-formed record keys are taken for records.
func TestKeys(t *testing.T) {
	for _, prefix := range []string{"", "cairn", "a/b"} {
		l := segmentlog.Layout{Prefix: prefix}
		if got, want := metaKey(l, "meta", "leases", "p0.json"), l.Lease("p0"); got != want {
			t.Errorf("prefix %q: %q, Layout says %q", prefix, got, want)
		}
		if got, want := metaKey(l, "meta", "checkpoints", "p0.json"), l.Checkpoint("p0"); got != want {
			t.Errorf("prefix %q: %q, Layout says %q", prefix, got, want)
		}
	}
	l := segmentlog.Layout{Prefix: "cairn"}
	for key, want := range map[string]string{
		vchannelKey(l, "v1"):                   "cairn/meta/vchannels/v1.json",
		nodeKey(l, "node-a"):                   "cairn/meta/nodes/node-a.json",
		assignmentKey(l, "p0"):                 "cairn/meta/assignments/p0.json",
		vchannelKey(segmentlog.Layout{}, "v1"): "meta/vchannels/v1.json",
	} {
		if key != want {
			t.Errorf("key %q, want %q", key, want)
		}
	}
	prefix := vchannelPrefix(l)
	for key, want := range map[string]string{
		prefix + "v1.json":      "v1",
		prefix + "v1.json.tmp":  "",
		prefix + "sub/v1.json":  "",
		prefix + ".json":        "",
		"other/v1.json":         "",
		prefix + "a..b.json":    "",
		prefix + "v.1-x_y.json": "v.1-x_y",
	} {
		got, ok := nameOfKey(prefix, "vchannel", key)
		if got != want || ok != (want != "") {
			t.Errorf("nameOfKey(%q) = %q, %t; want %q", key, got, ok, want)
		}
	}
}
