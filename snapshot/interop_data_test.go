package snapshot_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// interopRows is the least number of rows the interop data set holds: real
// sizes, many record batches per file (rowsPerRecord is 16 Ki).
const interopRows = 100_000

// interopData is a pchannel written by a real Writer on the filesystem
// store and flushed: its segment files are read in place, in the data
// directory, by the other Arrow implementations.
type interopData struct {
	files   []string       // segment object files under the data directory
	rows    int            // rows in them, by Cairn's own reader
	summary []summaryGroup // Cairn's own count and bytes per vchannel and type
}

// summaryGroup is one line of the summary every reader prints: how many
// messages of a type a vchannel holds and their payload bytes.
type summaryGroup struct {
	VChannel string `json:"vchannel"`
	Type     string `json:"type"`
	Count    int64  `json:"count"`
	Bytes    int64  `json:"bytes"`
}

func sortSummary(s []summaryGroup) {
	slices.SortFunc(s, func(a, b summaryGroup) int {
		return cmp.Or(cmp.Compare(a.VChannel, b.VChannel), cmp.Compare(a.Type, b.Type))
	})
}

// writeInteropData writes at least interopRows messages over five
// vchannels and the pchannel itself: every message type, properties,
// idempotency keys, transactions (committed; rolled back ones write
// nothing) and broadcast copies; then flushes them all.
func writeInteropData(t *testing.T) interopData {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := objstore.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	const pch = "interop"
	w := openWriter(t, store, pch, func(c *sl.WriterConfig) { c.PutTimeout = 10 * time.Second })
	defer w.Close(ctx)
	vchannels := []string{"orders", "users", "events", "audit", "metrics"}
	for _, v := range vchannels {
		if _, err := w.AppendControl(ctx, sl.Message{Type: sl.TypeCreateVChannel, VChannel: v}); err != nil {
			t.Fatal(err)
		}
	}
	dataTypes := []sl.MessageType{sl.TypeData, sl.TypeInsert, sl.TypeDelete}
	seq := uint64(0)
	for batch := 0; batch < interopRows/500; batch++ {
		msgs := make([]sl.Message, 0, 500)
		for i := range 500 {
			n := batch*500 + i
			m := sl.Message{Type: dataTypes[n%3], VChannel: vchannels[n%len(vchannels)],
				Payload: []byte(strings.Repeat("x", n%97))}
			if n%7 == 0 {
				m.Properties = map[string]string{"row": fmt.Sprint(n), "tenant": vchannels[n%4]}
			}
			if n%11 == 0 {
				seq++
				m.Key = sl.IdemKey{Producer: "gen", Epoch: 1, Seq: seq}
			}
			msgs = append(msgs, m)
		}
		if _, err := w.Append(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		if batch%20 == 0 {
			v := vchannels[batch%len(vchannels)]
			if _, err := w.AppendControl(ctx, sl.Message{Type: sl.TypeTimeTick}); err != nil { // pchannel-wide
				t.Fatal(err)
			}
			id, err := w.BeginTxn(ctx, v, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.AppendTxn(ctx, id, sl.Message{Type: sl.TypeInsert, VChannel: v, Payload: []byte("in a txn")},
				sl.Message{Type: sl.TypeDelete, VChannel: v, Properties: map[string]string{"pk": "1"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := w.CommitTxn(ctx, id); err != nil {
				t.Fatal(err)
			}
			id, err = w.BeginTxn(ctx, v, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.RollbackTxn(ctx, id); err != nil {
				t.Fatal(err)
			}
			bc := fmt.Sprintf("bc-%d", batch)
			for _, v := range vchannels[:3] {
				if _, err := w.AppendControl(ctx, sl.Message{Type: sl.TypeBroadcast, VChannel: v, BroadcastID: bc, Payload: []byte("create index"),
					Properties: map[string]string{sl.BroadcastDeadlineProperty: sl.FormatBroadcastDeadline(time.Now().Add(time.Hour))}}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := w.AppendControl(ctx, sl.Message{Type: sl.TypeFlush, VChannel: v}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := w.AppendControl(ctx, sl.Message{Type: sl.TypeDropVChannel, VChannel: "metrics"}); err != nil {
		t.Fatal(err)
	}
	if _, err := newFlusher(t, store, pch, nil).FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
	if err != nil {
		t.Fatal(err)
	}
	data := interopData{}
	for _, ref := range cp.Segments {
		data.files = append(data.files, objectFile(dir, ref.Key))
	}
	it, err := snapshot.NewSegmentReader(store, 0).Open(ctx, cp, sl.MessageID{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	groups := map[[2]string]*summaryGroup{}
	for {
		d, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data.rows++
		k := [2]string{d.VChannel, d.Type.String()}
		g := groups[k]
		if g == nil {
			g = &summaryGroup{VChannel: k[0], Type: k[1]}
			groups[k] = g
		}
		g.Count++
		g.Bytes += int64(len(d.Payload))
	}
	for _, g := range groups {
		data.summary = append(data.summary, *g)
	}
	sortSummary(data.summary)
	types := map[string]bool{}
	for _, g := range data.summary {
		types[g.Type] = true
	}
	if data.rows < interopRows || len(types) != 10 {
		t.Fatalf("interop data: %d rows of %d types (%v); want ≥ %d of the 10 types a writer writes", data.rows, len(types), types, interopRows)
	}
	return data
}

// objectFile is the filesystem store's object file of key (infra/objstore
// FS layout): the object's bytes alone, which any tool opens in place.
func objectFile(root, key string) string {
	elems := strings.Split(key, "/")
	for i := range elems[:len(elems)-1] {
		elems[i] += ".d"
	}
	elems[len(elems)-1] += ".obj"
	return filepath.Join(append([]string{root}, elems...)...)
}

// nodeOrFail returns the node binary, failing (never skipping) the test
// with what to install when it or the package in dir is missing.
func nodeOrFail(t *testing.T, dir, pkg string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (%v): the Arrow interop tests need Node.js; install it (Debian: apt-get install -y nodejs npm) and run `npm ci --prefix snapshot/%s`", err, dir)
	}
	if _, err := exec.Command(node, "-e", "require.resolve('"+pkg+"', {paths: ['"+dir+"']})").CombinedOutput(); err != nil {
		t.Fatalf("%s is not installed: run `npm ci --prefix snapshot/%s` (make test does)", pkg, dir)
	}
	return node
}

// runJSON runs cmd and returns its standard output, failing with its
// standard error.
func runOut(t *testing.T, cmd *exec.Cmd) []byte {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " ")[:min(200, len(strings.Join(cmd.Args, " ")))], err, ee.Stderr)
		}
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	return out
}
