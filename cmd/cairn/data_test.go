package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/infra/objstore"
)

// TestDataMigrate: `cairn data migrate` on a directory already in the
// current format says so and converts nothing; a missing directory is an
// error.
func TestDataMigrate(t *testing.T) {
	dir := t.TempDir()
	if _, err := objstore.NewFS(dir); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "", "data", "migrate", "--data-dir", dir)
	if err != nil || out != dir+": format 2, 0 objects converted\n" {
		t.Fatalf("migrate: %q, %v", out, err)
	}
	if _, _, err := runCLI(t, "", "data", "migrate", "--data-dir", dir+"/nosuch"); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("migrate of a missing directory: %v", err)
	}
}

// TestServeRefusesFormat1: a data directory written before format 2 (no
// format file, objects present) stops `cairn serve` with the command that
// converts it.
func TestServeRefusesFormat1(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "wal.d", "p0.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wal.d", "p0.d", "00000000000000000000.obj"), []byte("CAIRNOBJ"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runMain(t, "", "serve", "--addr", "127.0.0.1:0", "--data-dir", dir)
	if code == 0 || !strings.Contains(stderr, "cairn data migrate --data-dir") {
		t.Fatalf("serve on a format 1 directory: exit %d, %s", code, stderr)
	}
}
