package main

import (
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
