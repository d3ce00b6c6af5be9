package infra

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/cairnlog/cairn"

// TestLayering enforces the dependency rule of docs/architecture.md
// ("Packages") with `go list -deps`:
// only infra/, cmd/, functions/ and client/sigv4 (the SDK's opt-in AWS
// request signer) may reach the AWS SDK, and the core packages never
// depend on the outer ones.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	outer := []string{module + "/cmd", module + "/functions", module + "/client"}
	core := []string{"segmentlog", "coordinator", "cache", "snapshot"}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, " ")
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		mayUseAWS := strings.HasPrefix(rel, "infra/") || strings.HasPrefix(rel, "cmd/") || strings.HasPrefix(rel, "functions/") ||
			rel == "client/sigv4" || rel == "client/sigv4/sigv4test"
		isCore := false
		for _, c := range core {
			if rel == c || strings.HasPrefix(rel, c+"/") {
				isCore = true
			}
		}
		for _, d := range strings.Fields(deps) {
			if !mayUseAWS && strings.HasPrefix(d, "github.com/aws/") {
				t.Errorf("%s imports %s (directly or not): only infra/, cmd/, functions/ and client/sigv4 may use the AWS SDK", pkg, d)
			}
			if isCore {
				for _, o := range outer {
					if d == o || strings.HasPrefix(d, o+"/") {
						t.Errorf("core package %s depends on outer package %s: dependencies point inward", pkg, d)
					}
				}
			}
		}
		checked++
	}
	if checked < 3 {
		t.Fatalf("go list returned only %d packages; the check would prove nothing", checked)
	}
}
