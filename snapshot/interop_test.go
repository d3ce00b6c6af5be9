package snapshot_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// arrowJSDir holds the pinned JavaScript Arrow reader (package.json and
// package-lock.json); `npm ci --prefix snapshot/testdata/arrowjs` installs
// it.
const arrowJSDir = "testdata/arrowjs"

type jsSegment struct {
	Metadata map[string]string `json:"metadata"`
	Columns  []string          `json:"columns"`
	Rows     []struct {
		Offset      string                                 `json:"offset"`
		Index       uint32                                 `json:"index"`
		Term        string                                 `json:"term"`
		TimeTick    string                                 `json:"timetick"`
		Type        uint8                                  `json:"type"`
		Txn         string                                 `json:"txn"`
		Key         *struct{ Producer, Epoch, Seq string } `json:"key"`
		Properties  map[string]string                      `json:"properties"`
		Payload     string                                 `json:"payload"`
		BroadcastID *string                                `json:"broadcast_id"`
	} `json:"rows"`
}

// TestSegmentReadByArrowJS: a flushed segment read by another Arrow
// implementation (apache-arrow for JavaScript, with a zstd codec) gives the
// rows Go wrote. It fails, never skips, when node or the package is
// missing.
func TestSegmentReadByArrowJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (%v): the Arrow interop test needs Node.js; install it (Debian: apt-get install -y nodejs npm) and run `npm ci --prefix snapshot/testdata/arrowjs`", err)
	}
	if _, err := os.Stat(filepath.Join(arrowJSDir, "node_modules", "apache-arrow", "package.json")); err != nil {
		t.Fatalf("apache-arrow for JavaScript is not installed (%v): run `npm ci --prefix snapshot/testdata/arrowjs`", err)
	}
	ctx := context.Background()
	store := objstore.NewMemory()
	const pch = "interop"
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	msgs := []sl.Message{
		{Type: sl.TypeInsert, VChannel: "v1", Payload: []byte("row-1"), Key: sl.IdemKey{Producer: "prod", Epoch: 3, Seq: 1 << 60}},
		{Type: sl.TypeDelete, VChannel: "v1", Properties: map[string]string{"pk": "17", "éclair": "ü"}},
		{Type: sl.TypeData, VChannel: "v1", Payload: []byte{0, 1, 2, 255}},
	}
	if _, err := w.Append(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AppendControl(ctx, sl.Message{Type: sl.TypeBroadcast, VChannel: "v1", BroadcastID: "bc-7",
		Properties: map[string]string{sl.BroadcastDeadlineProperty: sl.FormatBroadcastDeadline(time.Now().Add(time.Minute))}}); err != nil {
		t.Fatal(err)
	}
	if _, err := newFlusher(t, store, pch, nil).FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
	if err != nil || len(cp.Segments) != 1 {
		t.Fatalf("checkpoint %+v, %v: want one segment", cp, err)
	}
	obj, err := store.Get(ctx, cp.Segments[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "segment.arrow")
	if err := os.WriteFile(file, obj.Body, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(arrowJSDir, "read_segment.cjs"), file)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("node read_segment.cjs: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("node read_segment.cjs: %v", err)
	}
	var js jsSegment
	if err := json.Unmarshal(out, &js); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}

	if want := []string{"offset", "index", "term", "timetick", "type", "txn", "key", "properties", "payload", "broadcast_id"}; !slices.Equal(js.Columns, want) {
		t.Errorf("columns %v, want %v", js.Columns, want)
	}
	if js.Metadata[snapshot.MetaFormat] != "1" || js.Metadata[snapshot.MetaVChannel] != "v1" || js.Metadata[snapshot.MetaPChannel] != pch {
		t.Errorf("schema metadata %v", js.Metadata)
	}
	it, err := snapshot.NewSegmentReader(store, 0).Open(ctx, cp, sl.MessageID{}, []string{"v1"})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var want []sl.Delivery
	for {
		d, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, d)
	}
	if len(js.Rows) != len(want) || len(want) != 4 {
		t.Fatalf("JavaScript read %d rows, Go %d; want 4", len(js.Rows), len(want))
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	for i, r := range js.Rows {
		d := want[i]
		got := fmt.Sprintf("%s.%d term %s tick %s type %d txn %s", r.Offset, r.Index, r.Term, r.TimeTick, r.Type, r.Txn)
		exp := fmt.Sprintf("%d.%d term %d tick %d type %d txn %d", d.ID.Offset, d.ID.Index, d.Term, d.TimeTick, d.Type, d.TxnID)
		if got != exp {
			t.Errorf("row %d: JavaScript %s, Go %s", i, got, exp)
		}
		switch {
		case d.Key.IsZero() != (r.Key == nil):
			t.Errorf("row %d: key %+v, Go %+v", i, r.Key, d.Key)
		case r.Key != nil && (r.Key.Producer != d.Key.Producer || r.Key.Epoch != u(d.Key.Epoch) || r.Key.Seq != u(d.Key.Seq)):
			t.Errorf("row %d: key %+v, Go %+v", i, *r.Key, d.Key)
		}
		if len(r.Properties) != len(d.Properties) || (d.Properties == nil) != (r.Properties == nil) {
			t.Errorf("row %d: properties %v, Go %v", i, r.Properties, d.Properties)
		}
		for k, v := range d.Properties {
			if r.Properties[k] != v {
				t.Errorf("row %d: properties %v, Go %v", i, r.Properties, d.Properties)
			}
		}
		if p, err := base64.StdEncoding.DecodeString(r.Payload); err != nil || string(p) != string(d.Payload) {
			t.Errorf("row %d: payload %q (%v), Go %q", i, p, err, d.Payload)
		}
		if (r.BroadcastID == nil) != (d.BroadcastID == "") || r.BroadcastID != nil && *r.BroadcastID != d.BroadcastID {
			t.Errorf("row %d: broadcast ID %v, Go %q", i, r.BroadcastID, d.BroadcastID)
		}
	}
	if js.Rows[0].Key == nil || js.Rows[0].Key.Seq != u(1<<60) || js.Rows[3].BroadcastID == nil || *js.Rows[3].BroadcastID != "bc-7" {
		t.Errorf("JavaScript rows %+v miss the key or broadcast ID written", js.Rows)
	}
}
