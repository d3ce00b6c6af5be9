package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestMakeRunSaysItBuilds: `make run` says it is building before the first
// build's minutes of silent compilation.
func TestMakeRunSaysItBuilds(t *testing.T) {
	out, err := exec.Command("make", "-s", "-n", "-C", "../..", "run").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n run: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], `echo "building cairn; the first build compiles every dependency`) ||
		!strings.Contains(lines[len(lines)-1], "run ./cmd/cairn serve") {
		t.Fatalf("make -n run:\n%s", out)
	}
}
