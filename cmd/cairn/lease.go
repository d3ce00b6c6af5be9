package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

func newLeaseCmd() *cobra.Command {
	var o adminOptions
	cmd := &cobra.Command{
		Use:   "lease",
		Short: "Inspect pchannel leases: list, describe",
		Long: `lease shows the lease records of a Cairn server: which process writes each
pchannel, in which term, until when. Every pchannel ever written has one.`,
		Args: cobra.NoArgs,
	}
	addConnFlags(cmd, &o.conn)
	cmd.AddCommand(newLeaseListCmd(&o), newLeaseDescribeCmd(&o))
	return cmd
}

const leaseHeader = "PCHANNEL\tHOLDER\tTERM\tLIVE\tRELEASED\tEXPIRES\tTAIL_HINT"

func leaseRow(l client.Lease) []any {
	return []any{l.PChannel, l.Holder, l.Term, yesNo(l.Live), yesNo(l.Released), timeCell(l.Expires), l.TailHint}
}

func newLeaseListCmd(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Table of every lease record",
		Long: `Prints every lease record, in pchannel order: holder, term, whether it is
live (neither released nor expired, by the server's clock), whether its
holder released it, when it expires unless renewed, and the tail hint the
holder last wrote into it. With --output json: the server's answer,
{"leases": [...]}.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			ls, err := c.Leases(cmd.Context())
			if err != nil {
				return err
			}
			return printLeases(cmd.OutOrStdout(), o.out.json(), ls)
		}),
	}
	addOutputFlag(cmd, &o.out, `{"leases": [...]}`)
	return cmd
}

func printLeases(w io.Writer, asJSON bool, ls []client.Lease) error {
	if asJSON {
		if ls == nil {
			ls = []client.Lease{}
		}
		return printJSON(w, struct {
			Leases []client.Lease `json:"leases"`
		}{ls})
	}
	rows := make([][]any, len(ls))
	for i, l := range ls {
		rows[i] = leaseRow(l)
	}
	return table(w, leaseHeader, rows)
}

func newLeaseDescribeCmd(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe PCHANNEL",
		Short: "The lease record of one pchannel",
		Long: `Prints the lease record of a pchannel, every field on its own line
(acquired is when the current term began; version counts the record's
updates). Fails with "not found" for a pchannel never written.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			l, err := c.Lease(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if o.out.json() {
				return printJSON(cmd.OutOrStdout(), l)
			}
			return table(cmd.OutOrStdout(), "FIELD\tVALUE", [][]any{
				{"pchannel", l.PChannel},
				{"holder", l.Holder},
				{"term", l.Term},
				{"live", yesNo(l.Live)},
				{"released", yesNo(l.Released)},
				{"expires", timeCell(l.Expires)},
				{"acquired", timeCell(l.AcquiredAt)},
				{"tail_hint", l.TailHint},
				{"version", l.Version},
			})
		}),
	}
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}
