package main

import (
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
