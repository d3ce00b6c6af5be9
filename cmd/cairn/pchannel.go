package main

import (
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

// adminOptions are the flags of the admin commands.
type adminOptions struct {
	conn connFlags
	out  outputFlag
}

// run is the RunE of an admin command: it checks --output, connects to the
// server, and calls do with the client.
func (o *adminOptions) run(do func(cmd *cobra.Command, args []string, c *client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := o.out.validate(); err != nil {
			return err
		}
		c, err := o.conn.client(cmd)
		if err != nil {
			return err
		}
		return do(cmd, args, c)
	}
}

func newPChannelCmd() *cobra.Command {
	var o adminOptions
	cmd := &cobra.Command{
		Use:   "pchannel",
		Short: "Inspect pchannels: list, describe, tail, sync, flush, trim, retention",
		Long: `pchannel shows the pchannels of a Cairn server, flushes and trims them. The
pchannels are the server's configured set (serve --pchannels); each comes to
exist with its first append.`,
		Args: cobra.NoArgs,
	}
	addConnFlags(cmd, &o.conn)
	cmd.AddCommand(newPChannelListCmd(&o, "list"), newPChannelTailCmd(&o), newPChannelSyncCmd(&o), newPChannelFlushCmd(&o),
		newTrimCmd(&o, false), newRetentionCmd(&o, false), newPChannelDescribeCmd(&o))
	return cmd
}

// newPChannelListCmd is `pchannel list`, and with use "status", `status`.
func newPChannelListCmd(o *adminOptions, use string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: "Table of every pchannel: holder, term, tail, checkpoint",
		Long: `Prints one row per pchannel ever written, in name order:

  PCHANNEL    its name
  HOLDER      the process holding (or that last held) its lease
  TERM        the lease term: it grows at every change of holder
  LIVE        yes while the lease is neither released nor expired
  TAIL        the next offset: the writer's if the server writes the
              pchannel, else the first empty slot probed from the store
  CHECKPOINT  the offset below which it is flushed to segments
  EXPIRES     when the lease expires unless renewed

With --output json: the server's answer, {"pchannels": [...]}.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			rows, err := c.PChannels(cmd.Context())
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), o.out.json(), rows)
		}),
	}
	addOutputFlag(cmd, &o.out, `{"pchannels": [...]}`)
	return cmd
}

func printStatus(w io.Writer, asJSON bool, rows []client.PChannelStatus) error {
	if asJSON {
		if rows == nil {
			rows = []client.PChannelStatus{}
		}
		return printJSON(w, struct {
			PChannels []client.PChannelStatus `json:"pchannels"`
		}{rows})
	}
	t := make([][]any, len(rows))
	for i, r := range rows {
		t[i] = []any{r.PChannel, r.Holder, r.Term, yesNo(r.Live), r.Tail, r.Checkpoint, timeCell(r.Expires)}
	}
	return table(w, "PCHANNEL\tHOLDER\tTERM\tLIVE\tTAIL\tCHECKPOINT\tEXPIRES", t)
}

func newPChannelTailCmd(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tail PCHANNEL",
		Short: "The next offset of a pchannel",
		Long: `Prints the next offset of a pchannel: the ack frontier of its writer when
the server holds its lease (SOURCE writer), else the first empty slot found
in the store (SOURCE store), which may lag a remote writer's last appends.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			t, err := c.Tail(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if o.out.json() {
				return printJSON(cmd.OutOrStdout(), t)
			}
			return table(cmd.OutOrStdout(), "PCHANNEL\tNEXT_OFFSET\tTERM\tSOURCE", [][]any{{t.PChannel, t.NextOffset, t.Term, t.Source}})
		}),
	}
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}

func newPChannelSyncCmd(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sync PCHANNEL",
		Short: "A timetick below which nothing more will be written to a pchannel",
		Long: `Asks the server for a timetick of the pchannel such that every message
appended later gets a larger one, and every message with a smaller one is
acknowledged. It opens the pchannel's writer on the server if needed (taking
its lease if free), but never creates a pchannel.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			s, err := c.Sync(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if o.out.json() {
				return printJSON(cmd.OutOrStdout(), s)
			}
			return table(cmd.OutOrStdout(), "PCHANNEL\tTERM\tTIMETICK", [][]any{{s.PChannel, s.Term, s.TimeTick}})
		}),
	}
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}

func newPChannelFlushCmd(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "flush PCHANNEL",
		Short: "Flush a pchannel's WAL to Arrow segments now",
		Long: `Flushes everything above the pchannel's flush checkpoint to segments now,
whatever the size and age thresholds of its flusher, and prints what this
flush wrote (ROUNDS 0: there was nothing to flush) and the checkpoint after
it. Fails with unknown_pchannel for a pchannel never written.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			f, err := c.Flush(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if o.out.json() {
				return printJSON(cmd.OutOrStdout(), f)
			}
			return table(cmd.OutOrStdout(), "PCHANNEL\tROUNDS\tMESSAGES\tSEGMENTS\tCHECKPOINT",
				[][]any{{f.PChannel, f.Rounds, f.Messages, f.Segments, f.Checkpoint}})
		}),
	}
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}

// newStatusCmd is `status`: the pchannel table, as `pchannel list`.
func newStatusCmd() *cobra.Command {
	var o adminOptions
	cmd := newPChannelListCmd(&o, "status")
	cmd.Short = "Table of every pchannel (as pchannel list)"
	addConnFlags(cmd, &o.conn)
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// timeCell is t in RFC 3339, local time, to the second; "-" if zero.
func timeCell(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}

// timePtrCell is timeCell of an optional time.
func timePtrCell(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return timeCell(*t)
}

// parsePairs reads the KEY=VALUE values of a repeated flag; a KEY given
// twice, an empty KEY, or an empty VALUE unless emptyValue is allowed, is an
// error naming the flag and its form (want, e.g. "SOURCE=NEW").
func parsePairs(flag, want string, xs []string, emptyValue bool) (map[string]string, error) {
	var out map[string]string
	for _, x := range xs {
		k, v, ok := strings.Cut(x, "=")
		if !ok || k == "" || (v == "" && !emptyValue) {
			return nil, usagef("--%s %q: want %s", flag, x, want)
		}
		if _, dup := out[k]; dup {
			return nil, usagef("--%s: %s given twice", flag, k)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out, nil
}
