package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/cmd/cairn/internal/bench"
)

// benchKeyRow is a row of docs/bench.md's "Keys" table:
// | `key` | unit | what |.
var benchKeyRow = regexp.MustCompile("^\\| `([a-z0-9_]+)` \\| ([^|]+?) \\|")

// docBenchKeys returns the keys docs/bench.md's "Keys" section
// documents, with their units.
func docBenchKeys(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/bench.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "\n## Keys\n")
	if !ok {
		t.Fatal(`docs/bench.md has no "## Keys" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	keys := map[string]string{}
	for _, line := range strings.Split(sec, "\n") {
		if m := benchKeyRow.FindStringSubmatch(line); m != nil {
			if _, dup := keys[m[1]]; dup {
				t.Errorf("docs/bench.md documents %s twice", m[1])
			}
			keys[m[1]] = m[2]
		}
	}
	if len(keys) < 10 {
		t.Fatalf("found only %d keys in docs/bench.md's Keys table; the parser or the table is broken", len(keys))
	}
	return keys
}

// TestBenchReportMatchesDocs runs `cairn bench --store fs --duration 1s
// --json` and checks that its report and docs/bench.md's "Keys" section
// list the same keys with the same units, that every target ran, and that
// --out wrote the same report. It asserts no timing.
func TestBenchReportMatchesDocs(t *testing.T) {
	documented := docBenchKeys(t)
	out := filepath.Join(t.TempDir(), "bench.json")
	root := newRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs([]string{"bench", "--store", "fs", "--duration", "1s", "--json", "--out", out})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("cairn bench: %v\nstderr:\n%s", err, &stderr)
	}

	var rep struct {
		Format   int       `json:"format"`
		Store    string    `json:"store"`
		Duration string    `json:"duration"`
		Go       string    `json:"go"`
		CPUs     int       `json:"cpus"`
		Started  time.Time `json:"started"`
		Elapsed  string    `json:"elapsed"`
		Metrics  map[string]struct {
			Value *float64 `json:"value"`
			Unit  string   `json:"unit"`
		} `json:"metrics"`
		Targets []struct {
			Name  string  `json:"name"`
			Key   string  `json:"key"`
			Value float64 `json:"value"`
			Op    string  `json:"op"`
			Limit float64 `json:"limit"`
			Unit  string  `json:"unit"`
			Met   bool    `json:"met"`
			Run   bool    `json:"run"`
		} `json:"targets"`
	}
	dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, &stdout)
	}
	if rep.Format != 1 || rep.Store != "fs" || rep.Duration != "1s" {
		t.Errorf("format %d, store %q, duration %q; want 1, fs, 1s", rep.Format, rep.Store, rep.Duration)
	}
	phase := map[string]string{}
	for _, f := range bench.Figures() {
		phase[f.Key] = f.Phase
	}
	for key, unit := range documented {
		m, ok := rep.Metrics[key]
		switch {
		case !ok && phase[key] == "lambda":
			// The lambda phase needs MinIO; this run is on the fs store.
		case !ok:
			t.Errorf("docs/bench.md documents %s, which the report lacks", key)
		case m.Value == nil:
			t.Errorf("%s has no value", key)
		case m.Unit != unit:
			t.Errorf("%s: unit %q in the report, %q in docs/bench.md", key, m.Unit, unit)
		}
	}
	for key := range rep.Metrics {
		if _, ok := documented[key]; !ok {
			t.Errorf("the report has %s, which docs/bench.md does not document", key)
		}
	}
	if len(rep.Targets) == 0 {
		t.Error("the report checks no target")
	}
	for _, tg := range rep.Targets {
		unit, ok := documented[tg.Key]
		if !ok || (!tg.Run && phase[tg.Key] != "lambda") || tg.Unit != unit || (tg.Op != ">=" && tg.Op != "<=") {
			t.Errorf("target %q: key documented %t, ran %t, unit %q (docs/bench.md: %q), op %q", tg.Name, ok, tg.Run, tg.Unit, unit, tg.Op)
		}
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, stdout.Bytes()) {
		t.Errorf("--out wrote another report than --json printed")
	}
}
