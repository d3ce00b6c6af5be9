package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/infra/objstore"
)

func newDataCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Maintain the data directory of the filesystem store (cairn serve --store fs)",
	}
	var dir string
	migrate := &cobra.Command{
		Use:   "migrate",
		Short: "Convert a data directory written by an older Cairn to the current format",
		Long: `Converts the data directory of the filesystem store in place to format 2,
where each object file holds the object's bytes alone (a segment file is a
plain Arrow file any tool opens) and a sidecar NAME.obj.meta beside it holds
its ETag, size, checksum and metadata. Format 1 kept a header in front of
every object; 'cairn serve' refuses such a directory and names this command.

Stop every 'cairn serve' using the directory first. A migration that stops
halfway is finished by running it again; a directory already converted is
left as it is.`,
		Example: `  cairn data migrate --data-dir .cairn-data`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := objstore.MigrateFS(cmd.Context(), dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: format 2, %d objects converted\n", dir, n)
			return nil
		},
	}
	migrate.Flags().StringVar(&dir, "data-dir", ".cairn-data", "the data directory to convert")
	cmd.AddCommand(migrate)
	return cmd
}
