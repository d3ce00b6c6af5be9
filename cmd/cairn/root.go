package main

import "github.com/spf13/cobra"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "cairn",
		Short: "Cairn: an object-storage-native write-ahead log",
		Long: `Cairn is a write-ahead log whose only stateful part is an object store
(S3, MinIO, or a local directory). 'cairn serve' runs it as one local process;
the other commands talk to a running server over its HTTP API.

The client commands (produce, consume, vchannel, snapshot, broadcast,
pchannel, lease, status) take --server (default http://127.0.0.1:7070, or $CAIRN_SERVER) and
--token (default $CAIRN_TOKEN) after their name.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildVersion(),
	}
	root.SetVersionTemplate("cairn {{.Version}}\n")
	root.AddCommand(newServeCmd(), newProduceCmd(), newConsumeCmd(), newVChannelCmd(), newSnapshotCmd(),
		newBroadcastCmd(), newPChannelCmd(), newLeaseCmd(), newStatusCmd())
	root.AddCommand(newBenchCmd(), newVersionCmd())
	return root
}
