package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// versionString says which build this is, from the build information Go
// embeds: the module version ("(devel)" for a build of a checkout), the
// VCS revision and its time, "modified" for a dirty tree, and the Go
// version.
func versionString(info *debug.BuildInfo, ok bool) string {
	if !ok {
		return "unknown (no build information)"
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, at, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	var b strings.Builder
	b.WriteString(version)
	if rev != "" {
		fmt.Fprintf(&b, " (revision %s", rev)
		if at != "" {
			fmt.Fprintf(&b, " of %s", at)
		}
		b.WriteString(modified + ")")
	} else {
		b.WriteString(" (no VCS revision)")
	}
	fmt.Fprintf(&b, " %s", info.GoVersion)
	return b.String()
}

// buildVersion is versionString of this binary.
func buildVersion() string { return versionString(debug.ReadBuildInfo()) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version: module version, VCS revision, Go version",
		Long: `version prints the cairn module's version ("(devel)" when built from a
checkout), the VCS revision it was built from with its commit time
("modified" if the tree had uncommitted changes), and the Go version.
'cairn --version' prints the same.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "cairn", buildVersion())
			return err
		},
	}
}
