package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionString: the module version, the VCS revision with its time
// and state, and the Go version, from build information.
func TestVersionString(t *testing.T) {
	info := func(version string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/cairnlog/cairn", Version: version}}
		for i := 0; i < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	for _, c := range []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{"release", info("v1.2.3"), true, "v1.2.3 (no VCS revision) go1.26.8"},
		{"checkout", info("(devel)", "vcs.revision", "abc123", "vcs.time", "2026-12-07T16:00:00Z", "vcs.modified", "false"), true,
			"(devel) (revision abc123 of 2026-12-07T16:00:00Z) go1.26.8"},
		{"dirty checkout", info("(devel)", "vcs.revision", "abc123", "vcs.modified", "true"), true, "(devel) (revision abc123, modified) go1.26.8"},
		{"no build info", nil, false, "unknown (no build information)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := versionString(c.info, c.ok); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestVersionCommand: `cairn version` and `cairn --version` print the
// same line, this binary's build information.
func TestVersionCommand(t *testing.T) {
	cmdOut, _, err := runCLI(t, "", "version")
	if err != nil {
		t.Fatal(err)
	}
	flagOut, _, err := runCLI(t, "", "--version")
	if err != nil {
		t.Fatal(err)
	}
	want := "cairn " + buildVersion() + "\n"
	if cmdOut != want || flagOut != want {
		t.Fatalf("version %q, --version %q, want %q", cmdOut, flagOut, want)
	}
	if !strings.Contains(want, "go1.") {
		t.Fatalf("version %q names no Go version", want)
	}
}
