package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

// trimLong is the part of the trim commands' help they share.
const trimLong = `
A read from below the trim point fails with code truncated and names the
earliest readable position (consume says which --from to use); a read from
earliest starts there; a reader already past it never notices. The server's
GC retires segment files wholly below it and deletes them after the
retirement grace (an hour by default), except those a snapshot pins. A
point at or below the current one changes nothing: trim is idempotent and
never moves back. A point beyond the pchannel's tail fails with invalid.
Prints the earliest readable position after the trim.`

// newTrimCmd is "pchannel trim" (vchannel false) or "vchannel trim".
func newTrimCmd(o *adminOptions, vchannel bool) *cobra.Command {
	var before string
	use, what := "trim PCHANNEL --before POSITION", "a pchannel"
	long := `Trims a pchannel: every message with an ID below --before (id:OFFSET.INDEX)
is no longer readable, on any vchannel of it.` + trimLong
	if vchannel {
		use, what = "trim VCHANNEL --before POSITION", "a vchannel"
		long = `Trims a vchannel: its messages with an ID below --before (id:OFFSET.INDEX, a
position of its pchannel) are no longer readable; the other vchannels of the
pchannel keep theirs. A restored vchannel loses its restored history.` + trimLong
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: "Trim " + what + ": nothing before a position is readable any more",
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			if before == "" {
				return usagef("--before is required: the first position to keep, id:OFFSET.INDEX")
			}
			trim := c.TrimPChannel
			if vchannel {
				trim = c.TrimVChannel
			}
			r, err := trim(cmd.Context(), args[0], before)
			if err != nil {
				return err
			}
			if o.out.json() {
				return printJSON(cmd.OutOrStdout(), r)
			}
			if vchannel {
				return table(cmd.OutOrStdout(), "VCHANNEL\tPCHANNEL\tEARLIEST", [][]any{{r.VChannel, r.PChannel, r.Earliest}})
			}
			return table(cmd.OutOrStdout(), "PCHANNEL\tEARLIEST", [][]any{{r.PChannel, r.Earliest}})
		}),
	}
	cmd.Flags().StringVar(&before, "before", "", "the first position to keep: id:OFFSET.INDEX (required)")
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}

// newRetentionCmd is "pchannel retention" (vchannel false) or "vchannel
// retention".
func newRetentionCmd(o *adminOptions, vchannel bool) *cobra.Command {
	var p client.RetentionPolicy
	use, what, name := "retention PCHANNEL [--max-age D] [--max-bytes N]", "a pchannel", "PCHANNEL"
	if vchannel {
		use, what, name = "retention VCHANNEL [--max-age D] [--max-bytes N]", "a vchannel", "VCHANNEL"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: "Set the retention policy of " + what + ": max age, max bytes",
		Long: `Replaces the retention policy of ` + what + ` and prints it with the earliest
readable position and the bytes its segment files hold (EARLIEST, BYTES_HELD).
Without --max-age and --max-bytes it keeps everything. cairn serve (before
every GC round, --gc-interval) and the maintenance function (every round)
trim ` + name + ` down to its policy: by age, what lies in segment files
written longer ago than --max-age (so a message lives up to --max-age plus
one flush); by size, the oldest segment files beyond --max-bytes. A
vchannel's policy trims the vchannel, not its pchannel. What a snapshot pins
is never deleted. Not yet flushed messages are not counted.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			set := c.SetPChannelRetention
			if vchannel {
				set = c.SetVChannelRetention
			}
			r, err := set(cmd.Context(), args[0], p)
			if err != nil {
				return err
			}
			if o.out.json() {
				return printJSON(cmd.OutOrStdout(), r)
			}
			return table(cmd.OutOrStdout(), "NAME\tMAX_AGE\tMAX_BYTES\tEARLIEST\tBYTES_HELD", [][]any{{args[0], dash(r.MaxAge), r.MaxBytes, r.Earliest, r.BytesHeld}})
		}),
	}
	cmd.Flags().DurationVar(&p.MaxAge, "max-age", 0, "trim what was flushed longer ago than this (0: no age bound)")
	cmd.Flags().Int64Var(&p.MaxBytes, "max-bytes", 0, "trim the oldest segment files beyond this many bytes (0: no size bound)")
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}

// retentionCell is a policy in one cell: "max_age=1h0m0s max_bytes=100", or
// "-" for none.
func retentionCell(r client.Retention) string {
	var parts []string
	if r.MaxAge != "" {
		parts = append(parts, "max_age="+r.MaxAge)
	}
	if r.MaxBytes > 0 {
		parts = append(parts, "max_bytes="+strconv.FormatInt(r.MaxBytes, 10))
	}
	return dash(strings.Join(parts, " "))
}

// newPChannelDescribeCmd is "pchannel describe": one row of the status
// table, every field on its own line, with its retention.
func newPChannelDescribeCmd(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe PCHANNEL",
		Short: "One pchannel: lease, tail, checkpoint, retention, earliest position, bytes held",
		Long: `Prints a pchannel's row of the status table (pchannel list), every field on
its own line, and its retention: the policy (cairn pchannel retention), the
earliest readable position (a trim point moves it up) and the bytes its
segment files hold. Fails with unknown_pchannel for a pchannel never
written.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			rows, err := c.PChannels(cmd.Context())
			if err != nil {
				return err
			}
			for _, r := range rows {
				if r.PChannel != args[0] {
					continue
				}
				if o.out.json() {
					return printJSON(cmd.OutOrStdout(), r)
				}
				return table(cmd.OutOrStdout(), "FIELD\tVALUE", [][]any{
					{"pchannel", r.PChannel}, {"holder", r.Holder}, {"term", r.Term}, {"live", yesNo(r.Live)},
					{"tail", r.Tail}, {"checkpoint", r.Checkpoint}, {"expires", timeCell(r.Expires)},
					{"retention", retentionCell(r.Retention)}, {"earliest", r.Retention.Earliest}, {"bytes_held", r.Retention.BytesHeld},
				})
			}
			return &client.Error{Method: "GET", Path: "/v1/pchannels", Status: 404, Code: "unknown_pchannel",
				Message: fmt.Sprintf("pchannel %q has never been written", args[0])}
		}),
	}
	addOutputFlag(cmd, &o.out, "the pchannel's row of the server's status answer")
	return cmd
}
