package infra

import (
	"os/exec"
	"slices"
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

// TestForbiddenImports: the direct imports each layer must not make
// (pebble's forbidden-imports lint is the model), checked with `go list`:
//   - outside infra/, only cmd/ and the Lambda mains
//     (functions/internal/lambdamain and the functions/* commands) import
//     the S3 adapter in their code (tests that run against MinIO may);
//   - functions/api and functions/system import no store adapter, not even
//     in tests, so that the HTTP API and the runtime run over any
//     objstore.Store they are given;
//   - functions/system never imports functions/api: the runtime knows
//     nothing of HTTP;
//   - functions/api/wire, the API's contract, imports the standard library
//     only, so that any Go client can use it without the server.
func TestForbiddenImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}}|{{join .Imports " "}}|{{join .TestImports " "}} {{join .XTestImports " "}}`, module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	s3 := module + "/infra/objstore/s3store"
	adapters := []string{s3, module + "/infra/miniotest"}
	mains := map[string]bool{"functions/internal/lambdamain": true, "functions/node": true, "functions/coordinator": true,
		"functions/snapshot": true, "functions/maintenance": true}
	noAdapter := map[string]bool{"functions/api": true, "functions/system": true}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 {
			t.Fatalf("go list line %q", line)
		}
		pkg, code, tests := parts[0], strings.Fields(parts[1]), strings.Fields(parts[2])
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		seen[rel] = true
		mayUseS3 := strings.HasPrefix(rel, "cmd/") || strings.HasPrefix(rel, "infra/") || mains[rel]
		for _, d := range code {
			if d == s3 && !mayUseS3 {
				t.Errorf("%s imports the S3 adapter: only cmd/, infra/ and the Lambda mains may", pkg)
			}
			if rel == "functions/system" && (d == module+"/functions/api" || strings.HasPrefix(d, module+"/functions/api/")) {
				t.Errorf("%s imports %s: the runtime knows nothing of HTTP", pkg, d)
			}
		}
		if rel == "functions/api/wire" {
			for _, d := range code {
				if strings.Contains(strings.Split(d, "/")[0], ".") {
					t.Errorf("%s imports %s: the wire contract imports the standard library only", pkg, d)
				}
			}
		}
		if noAdapter[rel] {
			for _, d := range append(code, tests...) {
				if slices.Contains(adapters, d) {
					t.Errorf("%s imports the store adapter %s: it must run over any objstore.Store", pkg, d)
				}
			}
		}
	}
	for _, rel := range []string{"functions/api", "functions/system", "functions/api/wire"} {
		if !seen[rel] {
			t.Errorf("go list did not list %s: the check would prove nothing", rel)
		}
	}
}
