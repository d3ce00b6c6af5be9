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
--token (default $CAIRN_TOKEN) after their name.

An error is printed on standard error as one sentence (the server's own
message, with the ref it logged the cause under); with --output json, as
a JSON object {"code", "message", "status", "ref", "exit"}. Exit status:
0 success, 1 any other failure (a conflict, a failed task), 2 usage (bad
flags or arguments, or a request the server refused as invalid), 3 not
found (pchannel, vchannel, snapshot, restore job, broadcast), 4 unavailable
(the server cannot be reached or stayed busy, or an append's outcome is
unknown), 5 internal (the server failed).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildVersion(),
	}
	root.SetVersionTemplate("cairn {{.Version}}\n")
	root.AddCommand(newServeCmd(), newProduceCmd(), newConsumeCmd(), newVChannelCmd(), newSnapshotCmd(),
		newBroadcastCmd(), newPChannelCmd(), newLeaseCmd(), newStatusCmd())
	root.AddCommand(newBenchCmd(), newVersionCmd(), newDataCmd(), newExportCmd())
	addDeployFlags(root) // stack.go: --stack, --profile, --region
	root.AddCommand(newConfigCmd())
	return root
}
