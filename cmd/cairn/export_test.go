package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/client"
)

// duckDBDir holds the pinned DuckDB for Node (npm ci --prefix
// cmd/cairn/testdata/duckdb).
const duckDBDir = "testdata/duckdb"

type exportGroup struct {
	VChannel string `json:"vchannel"`
	Type     string `json:"type"`
	Count    int64  `json:"count"`
	Bytes    int64  `json:"bytes"`
}

func sortGroups(g []exportGroup) {
	slices.SortFunc(g, func(a, b exportGroup) int {
		return cmp.Or(cmp.Compare(a.VChannel, b.VChannel), cmp.Compare(a.Type, b.Type))
	})
}

// TestExportDuckDB: `cairn export` of a pchannel (segments and WAL), of a
// vchannel range and of a snapshot, from a running `cairn serve`'s data
// directory, queried by DuckDB with the SQL of docs/segments.md verbatim:
// messages and payload bytes per vchannel and type equal what the server's
// read API returns, and the snapshot's count what its record says.
func TestExportDuckDB(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (%v): install Node.js and run `npm ci --prefix cmd/cairn/%s`", err, duckDBDir)
	}
	if _, err := os.Stat(filepath.Join(duckDBDir, "node_modules", "@duckdb", "node-api")); err != nil {
		t.Fatalf("DuckDB for Node is not installed (%v): run `npm ci --prefix cmd/cairn/%s` (make test does)", err, duckDBDir)
	}
	ctx := t.Context()
	dir := t.TempDir()
	base, _, _ := startServe(t, serveOptions{addr: "127.0.0.1:0", store: "fs", dataDir: dir}, nil)
	c, err := client.New(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"orders", "users"} {
		if _, err := c.CreateVChannel(ctx, v, "p1"); err != nil {
			t.Fatal(err)
		}
	}
	appendSome := func(round int) {
		for _, v := range []string{"orders", "users"} {
			var msgs []client.Message
			for i := range 300 {
				m := client.Message{VChannel: v, Type: []string{"data", "insert", "delete"}[i%3], Payload: []byte(strings.Repeat("p", (i+round)%50))}
				if i%5 == 0 {
					m.Properties = map[string]string{"i": fmt.Sprint(i)}
				}
				msgs = append(msgs, m)
			}
			if _, err := c.AppendVChannel(ctx, v, msgs, client.AppendOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendSome(0)
	if _, err := c.Broadcast(ctx, client.BroadcastRequest{ID: "b1", VChannels: []string{"orders", "users"}, Payload: []byte("ddl")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Flush(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	snap, err := c.CreateSnapshot(ctx, "nightly", []string{"orders"})
	if err != nil {
		t.Fatal(err)
	}
	appendSome(1) // above the checkpoint: read from the WAL

	// Cairn's own counts: the read API, every type.
	want := map[[2]string]*exportGroup{}
	var orders int64
	var ids []client.MessageID
	from := client.Earliest
	for {
		rr, err := c.Read(ctx, "p1", client.ReadOptions{From: from, Max: 10000, Types: allTypeNames()})
		if err != nil {
			t.Fatal(err)
		}
		if len(rr.Messages) == 0 {
			break
		}
		for _, d := range rr.Messages {
			k := [2]string{d.VChannel, d.Type}
			if want[k] == nil {
				want[k] = &exportGroup{VChannel: d.VChannel, Type: d.Type}
			}
			want[k].Count++
			want[k].Bytes += int64(len(d.Payload))
			if d.VChannel == "orders" {
				orders++
			}
			ids = append(ids, d.ID)
		}
		from = rr.Next
	}
	var wantGroups []exportGroup
	for _, g := range want {
		wantGroups = append(wantGroups, *g)
	}
	sortGroups(wantGroups)

	out := t.TempDir()
	if stdout, stderr, err := runCLI(t, "", "export", "--data-dir", dir, "--pchannel", "p1", "--out", filepath.Join(out, "p1.parquet")); err != nil {
		t.Fatalf("export: %v", err)
	} else if stdout != fmt.Sprintf("exported %d messages (pchannel p1) to %s\n", len(ids), filepath.Join(out, "p1.parquet")) || stderr != "" {
		t.Fatalf("export printed %q, %q (no progress bar off a terminal)", stdout, stderr)
	}
	sql := docsSQL(t)
	var got []exportGroup
	duckDB(t, node, out, sql, &got)
	sortGroups(got)
	if !slices.Equal(got, wantGroups) {
		t.Fatalf("DuckDB over the export:\n%+v\nCairn's read API:\n%+v", got, wantGroups)
	}

	// One vchannel, and a snapshot.
	if _, _, err := runCLI(t, "", "export", "--data-dir", dir, "--pchannel", "p1", "--vchannel", "orders", "--out", filepath.Join(out, "orders.parquet")); err != nil {
		t.Fatalf("export --vchannel: %v", err)
	}
	if _, _, err := runCLI(t, "", "export", "--data-dir", dir, "--snapshot", "nightly", "--out", filepath.Join(out, "nightly.parquet")); err != nil {
		t.Fatalf("export --snapshot: %v", err)
	}
	// A range [ids[100], ids[len-100]) crossing the checkpoint: segments,
	// then WAL.
	lo, hi := ids[100], ids[len(ids)-100]
	if _, _, err := runCLI(t, "", "export", "--data-dir", dir, "--pchannel", "p1", "--from", fmt.Sprintf("id:%d.%d", lo.Offset, lo.Index),
		"--to", fmt.Sprintf("id:%d.%d", hi.Offset, hi.Index), "--out", filepath.Join(out, "range.parquet")); err != nil {
		t.Fatalf("export --from --to: %v", err)
	}
	var counts []struct {
		Orders, Snapshot, Other, Range int64
		First, Last                    string
	}
	duckDB(t, node, out, `SELECT (SELECT count(*) FROM 'orders.parquet') AS "Orders",
		(SELECT count(*) FROM 'nightly.parquet') AS "Snapshot",
		(SELECT count(*) FROM 'nightly.parquet' WHERE vchannel <> 'orders') AS "Other",
		(SELECT count(*) FROM 'range.parquet') AS "Range",
		(SELECT min("offset")::VARCHAR || '.' || arg_min("index", ("offset", "index"))::VARCHAR FROM 'range.parquet') AS "First",
		(SELECT max("offset")::VARCHAR || '.' || arg_max("index", ("offset", "index"))::VARCHAR FROM 'range.parquet') AS "Last"`, &counts)
	wantFirst, wantLast := fmt.Sprintf("%d.%d", lo.Offset, lo.Index), fmt.Sprintf("%d.%d", ids[len(ids)-101].Offset, ids[len(ids)-101].Index)
	if len(counts) != 1 || counts[0].Orders != orders || counts[0].Snapshot != snap.Messages || counts[0].Other != 0 ||
		counts[0].Range != int64(len(ids)-200) || counts[0].First != wantFirst || counts[0].Last != wantLast {
		t.Fatalf("DuckDB counts %+v; want orders %d, snapshot %d of orders only, range %d from %s to %s", counts, orders, snap.Messages, len(ids)-200, wantFirst, wantLast)
	}

	// Bad use is a usage error; a snapshot that does not exist says so.
	if _, _, err := runCLI(t, "", "export", "--data-dir", dir, "--pchannel", "p1"); !errors.Is(err, errUsage) {
		t.Fatalf("export without --out: %v", err)
	}
	if _, _, err := runCLI(t, "", "export", "--data-dir", dir, "--snapshot", "nosuch", "--out", filepath.Join(out, "x.parquet")); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("export of a missing snapshot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "x.parquet")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed export left its file: %v", err)
	}
}

func allTypeNames() []string {
	return []string{"data", "insert", "delete", "timetick", "txn_begin", "txn_commit", "txn_rollback", "broadcast", "flush", "create_vchannel", "drop_vchannel"}
}

// duckDB runs sql with DuckDB in dir and decodes its rows into v.
func duckDB(t *testing.T, node, dir, sql string, v any) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "query.sql")
	if err := os.WriteFile(file, []byte(sql), 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join(duckDBDir, "query.cjs"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script, file)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("duckdb: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("duckdb: %v", err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("duckdb output %.300q: %v", out, err)
	}
}

// docsSQL is the DuckDB example of docs/segments.md, verbatim.
func docsSQL(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/segments.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- duckdb-example -->\n```sql\n")
	code, _, ok2 := strings.Cut(after, "\n```")
	if !ok || !ok2 {
		t.Fatal("docs/segments.md has no SQL block after <!-- duckdb-example -->")
	}
	return code
}
