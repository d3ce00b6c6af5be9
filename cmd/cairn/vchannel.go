package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

func newVChannelCmd() *cobra.Command {
	var o adminOptions
	cmd := &cobra.Command{
		Use:   "vchannel",
		Short: "Manage vchannels: create, list, describe, drop, locate, trim, retention",
		Long: `vchannel manages the vchannels of a Cairn server: logical streams, each bound
for good to one pchannel of the server's set. produce and consume take a
vchannel alone (--vchannel, no --pchannel) once it exists. A dropped name is
never used again.`,
		Args: cobra.NoArgs,
	}
	addConnFlags(cmd, &o.conn)
	cmd.AddCommand(newVChannelCreateCmd(&o), newVChannelListCmd(&o), newVChannelDescribeCmd(&o),
		newVChannelDropCmd(&o), newVChannelLocateCmd(&o), newTrimCmd(&o, true),
		newRetentionCmd(&o, true))
	return cmd
}

func newVChannelCreateCmd(o *adminOptions) *cobra.Command {
	var pchannel string
	cmd := &cobra.Command{
		Use:   "create VCHANNEL",
		Short: "Create a vchannel",
		Long: `Creates a vchannel bound to --pchannel (one of the server's set, as cairn
serve --pchannels lists it) or, without it, to the pchannel with the fewest
active vchannels, and prints its record as describe does. Creating an
existing vchannel with the same binding prints it again; another binding
fails with binding_conflict, a dropped name with vchannel_dropped, a
pchannel outside the set with unknown_pchannel.`,
		Example: `  cairn vchannel create orders
  cairn vchannel create orders --pchannel p2 --output json`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			v, err := c.CreateVChannel(cmd.Context(), args[0], pchannel)
			if err != nil {
				return err
			}
			return printVChannel(cmd.OutOrStdout(), o.out.json(), v)
		}),
	}
	cmd.Flags().StringVar(&pchannel, "pchannel", "", "bind to this pchannel (default: the least loaded)")
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}

func newVChannelListCmd(o *adminOptions) *cobra.Command {
	var f client.VChannelFilter
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Table of vchannels",
		Long: `Prints one row per vchannel, in name order, dropped ones included:

  VCHANNEL  its name
  PCHANNEL  the pchannel it is bound to
  STATE     active, dropped, or reclaiming (GC is deleting its data)
  CREATED   when it was created
  PINS      the snapshots (and restore jobs) that keep its data, or -

--pchannel and --state keep only the matching rows. With --output json: the
server's answer, {"vchannels": [...]}.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			vs, err := c.VChannels(cmd.Context(), f)
			if err != nil {
				return err
			}
			if o.out.json() {
				if vs == nil {
					vs = []client.VChannel{}
				}
				return printJSON(cmd.OutOrStdout(), struct {
					VChannels []client.VChannel `json:"vchannels"`
				}{vs})
			}
			rows := make([][]any, len(vs))
			for i, v := range vs {
				rows[i] = []any{v.Name, v.PChannel, v.State, timeCell(v.CreatedAt), listCell(v.Pins)}
			}
			return table(cmd.OutOrStdout(), "VCHANNEL\tPCHANNEL\tSTATE\tCREATED\tPINS", rows)
		}),
	}
	cmd.Flags().StringVar(&f.PChannel, "pchannel", "", "only vchannels bound to this pchannel")
	cmd.Flags().StringVar(&f.State, "state", "", "only vchannels in this state: active, dropped or reclaiming")
	addOutputFlag(cmd, &o.out, `{"vchannels": [...]}`)
	return cmd
}

func newVChannelDescribeCmd(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe VCHANNEL",
		Short: "The record of one vchannel",
		Long: `Prints a vchannel's record, every field on its own line: its pchannel and
state, where its create (and drop) message landed, its flushed position
(every message of it below is in segments), the snapshots pinning it,
the record's version, its own trim point, its retention policy (cairn vchannel
retention), its earliest readable position and the bytes its segment files
hold. Fails with unknown_vchannel for an unknown one.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			v, err := c.VChannel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printVChannel(cmd.OutOrStdout(), o.out.json(), v)
		}),
	}
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}

func newVChannelDropCmd(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drop VCHANNEL",
		Short: "Drop a vchannel",
		Long: `Drops a vchannel and prints its record, now dropped. It takes no more
appends; its data stays readable until GC reclaims it, which waits for every
snapshot that pins it to be dropped. Dropping again is harmless; an
unknown name fails with unknown_vchannel.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			v, err := c.DropVChannel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printVChannel(cmd.OutOrStdout(), o.out.json(), v)
		}),
	}
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}

func newVChannelLocateCmd(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "locate VCHANNEL",
		Short: "Where a vchannel's appends go: its pchannel, holder node and address",
		Long: `Prints the vchannel's pchannel, the node holding the pchannel's lease, the
node's address (- when the holder is no registered node) and term, and the
pchannel's assignment. While nobody holds the pchannel the server answers
no_holder, and the command fails once its retries run out.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			l, err := c.Locate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if o.out.json() {
				return printJSON(cmd.OutOrStdout(), l)
			}
			return table(cmd.OutOrStdout(), "VCHANNEL\tPCHANNEL\tNODE\tADDRESS\tTERM\tASSIGNMENT",
				[][]any{{l.VChannel, l.PChannel, l.Node, dash(l.Address), l.Term, strings.TrimSpace(l.Assignment.State + " " + l.Assignment.Node)}})
		}),
	}
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}

func printVChannel(w io.Writer, asJSON bool, v client.VChannel) error {
	if asJSON {
		return printJSON(w, v)
	}
	rows := [][]any{
		{"vchannel", v.Name},
		{"pchannel", v.PChannel},
		{"state", v.State},
		{"created", timeCell(v.CreatedAt)},
		{"create_message", markCell(v.Created)},
		{"dropped", timePtrCell(v.DroppedAt)},
		{"drop_message", markCell(v.Dropped)},
		{"flushed_to", fmt.Sprintf("id:%d.%d", v.Position.Offset, v.Position.Index)},
		{"pins", listCell(v.Pins)},
		{"version", v.Version},
	}
	if r := v.Retention; r != nil { // describe
		rows = append(rows, []any{"trimmed_before", dash(v.Trim)}, []any{"retention", retentionCell(*r)},
			[]any{"earliest", r.Earliest}, []any{"bytes_held", r.BytesHeld})
	}
	return table(w, "FIELD\tVALUE", rows)
}

// markCell is where a control message landed, as a position; "-" if it
// did not (yet).
func markCell(m *client.WALMark) string {
	if m == nil {
		return "-"
	}
	return client.AtID(client.MessageID{Offset: m.Offset, Index: m.Index})
}

func listCell(xs []string) string { return dash(strings.Join(xs, ",")) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
