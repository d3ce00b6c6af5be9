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
	"strings"
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
		VChannel    string                                 `json:"vchannel"`
		Offset      string                                 `json:"offset"`
		Index       uint32                                 `json:"index"`
		Term        string                                 `json:"term"`
		TimeTick    string                                 `json:"timetick"`
		Timestamp   int64                                  `json:"timestamp"`
		Type        string                                 `json:"type"`
		TypeCode    uint8                                  `json:"type_code"`
		Txn         string                                 `json:"txn"`
		Key         *struct{ Producer, Epoch, Seq string } `json:"key"`
		Properties  map[string]string                      `json:"properties"`
		Payload     string                                 `json:"payload"`
		BroadcastID *string                                `json:"broadcast_id"`
	} `json:"rows"`
}

// TestSegmentReadByArrowJS: a flushed segment read by another Arrow
// implementation (apache-arrow for JavaScript, with a zstd codec) gives the
// rows Go wrote, column by column. TestInterop reads real sizes. It fails,
// never skips, when node or the package is missing.
func TestSegmentReadByArrowJS(t *testing.T) {
	node := nodeOrFail(t, arrowJSDir, "apache-arrow")
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
	out := runOut(t, exec.Command(node, filepath.Join(arrowJSDir, "read_segment.cjs"), "rows", file))
	var js jsSegment
	if err := json.Unmarshal(out, &js); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}

	if want := []string{"vchannel", "offset", "index", "term", "timetick", "timestamp", "type", "type_code", "txn", "key", "properties", "payload", "broadcast_id"}; !slices.Equal(js.Columns, want) {
		t.Errorf("columns %v, want %v", js.Columns, want)
	}
	if js.Metadata[snapshot.MetaFormat] != "2" || js.Metadata[snapshot.MetaVChannel] != "v1" || js.Metadata[snapshot.MetaPChannel] != pch {
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
		got := fmt.Sprintf("%s %s.%d term %s tick %s at %d type %s (%d) txn %s", r.VChannel, r.Offset, r.Index, r.Term, r.TimeTick, r.Timestamp, r.Type, r.TypeCode, r.Txn)
		exp := fmt.Sprintf("%s %d.%d term %d tick %d at %d type %s (%d) txn %d", d.VChannel, d.ID.Offset, d.ID.Index, d.Term, d.TimeTick, sl.TickTime(d.TimeTick).UnixMilli(), d.Type, d.Type, d.TxnID)
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

// polarsDir holds the pinned nodejs-polars; `npm ci --prefix
// snapshot/testdata/polars` installs it.
const polarsDir = "testdata/polars"

// arrowGo18Dir is a Go module of its own reading segments with arrow-go v18.
const arrowGo18Dir = "testdata/arrowgo18"

// TestInterop writes a pchannel of over 100,000 messages (five vchannels,
// every message type, properties, keys, transactions, broadcasts) with the
// real Writer on the filesystem store, flushes it, and has three other
// Arrow readers open the segment files in place in the data directory:
// Arrow JS (zstd registered), nodejs-polars (running the example of
// docs/segments.md verbatim) and arrow-go v18. Each must count the same
// messages and payload bytes per vchannel and type as Cairn's own reader.
func TestInterop(t *testing.T) {
	data := writeInteropData(t)
	check := func(t *testing.T, reader string, out []byte) {
		t.Helper()
		var got []summaryGroup
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s output %.300q: %v", reader, out, err)
		}
		sortSummary(got)
		if !slices.Equal(got, data.summary) {
			t.Fatalf("%s counts\n%+v\nCairn's reader\n%+v", reader, got, data.summary)
		}
	}
	t.Run("arrowjs", func(t *testing.T) {
		t.Parallel()
		node := nodeOrFail(t, arrowJSDir, "apache-arrow")
		check(t, "arrow-js", runOut(t, exec.Command(node, append([]string{filepath.Join(arrowJSDir, "read_segment.cjs"), "summary"}, data.files...)...)))
	})
	t.Run("polars", func(t *testing.T) {
		t.Parallel()
		node := nodeOrFail(t, polarsDir, "nodejs-polars")
		script := filepath.Join(t.TempDir(), "summary.cjs")
		if err := os.WriteFile(script, []byte(docsExample(t, "../docs/segments.md", "<!-- polars-example -->")), 0o644); err != nil {
			t.Fatal(err)
		}
		modules, err := filepath.Abs(filepath.Join(polarsDir, "node_modules"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(node, append([]string{script}, data.files...)...)
		cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
		check(t, "nodejs-polars", runOut(t, cmd))
	})
	t.Run("arrowgo18", func(t *testing.T) {
		t.Parallel()
		gobin, err := exec.LookPath("go")
		if err != nil {
			t.Fatalf("go not found: %v", err)
		}
		bin := filepath.Join(t.TempDir(), "arrowgo18")
		build := exec.Command(gobin, "build", "-o", bin, ".")
		build.Dir = arrowGo18Dir
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s (arrow-go v18, from the Go module proxy or the module cache): %v\n%s", arrowGo18Dir, err, out)
		}
		check(t, "arrow-go v18", runOut(t, exec.Command(bin, data.files...)))
	})
}

// docsExample returns the fenced code block that follows marker in the
// Markdown file path: the test runs the documentation's example verbatim.
func docsExample(t *testing.T, path, marker string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), marker+"\n```")
	if !ok {
		t.Fatalf("%s has no code block after %s", path, marker)
	}
	_, after, _ = strings.Cut(after, "\n") // the fence's language
	code, _, ok := strings.Cut(after, "\n```")
	if !ok {
		t.Fatalf("%s: unterminated code block after %s", path, marker)
	}
	return code + "\n"
}
