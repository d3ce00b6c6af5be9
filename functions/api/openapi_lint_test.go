package api

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// redoclyDir holds the pinned Redocly CLI (package.json and
// package-lock.json); `make test` installs it with `npm ci --prefix
// functions/api/testdata/redocly`.
const redoclyDir = "testdata/redocly"

// TestOpenAPILint lints openapi.yaml with the pinned Redocly CLI under
// redocly.yaml: the recommended rules, each an error, but for the ones
// redocly.yaml turns off with its reason. Any problem fails the test with
// Redocly's report.
func TestOpenAPILint(t *testing.T) {
	bin := filepath.Join(redoclyDir, "node_modules", ".bin", "redocly")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the Redocly CLI is not installed (%v): run `npm ci --prefix functions/api/%s` (make test does)", err, redoclyDir)
	}
	cmd := exec.Command(bin, "lint", "openapi.yaml", "--config", "redocly.yaml", "--format", "stylish")
	// No usage telemetry and no update check: the test talks to no one.
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redocly lint openapi.yaml: %v\n%s", err, out)
	}
}
