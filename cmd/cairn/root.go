package main

import "github.com/spf13/cobra"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "cairn",
		Short: "Cairn: an object-storage-native write-ahead log",
		Long: `Cairn is a write-ahead log whose only stateful part is an object store
(S3, MinIO, or a local directory). 'cairn serve' runs it as one local process.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd())
	return root
}
