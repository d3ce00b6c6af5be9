package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

func newBroadcastCmd() *cobra.Command {
	var o adminOptions
	cmd := &cobra.Command{
		Use:   "broadcast",
		Short: "Broadcasts: send one message to several vchannels; list, describe",
		Long: `broadcast sends one message to several vchannels at once, a copy on each,
as a task of the server's coordinator, and shows the tasks. A task is
idempotent by its ID: sending it again shows it, and each vchannel gets one
copy however often it is sent. consume prints a copy like any message (with
--output json its type is broadcast and broadcast_id names it).`,
		Args: cobra.NoArgs,
	}
	addConnFlags(cmd, &o.conn)
	cmd.AddCommand(newBroadcastSendCmd(&o), newBroadcastListCmd(&o), newBroadcastDescribeCmd(&o))
	return cmd
}

type broadcastSendOptions struct {
	req        client.BroadcastRequest
	payload    string
	properties []string
	wait       time.Duration
}

func newBroadcastSendCmd(o *adminOptions) *cobra.Command {
	var so broadcastSendOptions
	cmd := &cobra.Command{
		Use:   "send --id ID --vchannel V [--vchannel V ...]",
		Short: "Send one message to several vchannels",
		Long: `Sends --payload (and --property pairs) to every --vchannel as broadcast
--id, and prints the task as describe does once it is finished or --wait
ran out. With --ack fast (the default) a copy counts once it is in the WAL;
with --ack sync, once its pchannel is flushed past it (cairn serve flushes
a pchannel when its oldest message is --flush-max-age old; cairn pchannel
flush does it now). --resource names more locks to hold while the copies
are appended, to order this broadcast against others that name them.

A task still pending when --wait runs out is printed with state pending,
and the server finishes it in the background (cairn broadcast describe ID
follows it; sending the same command again resumes it too). --wait 0 only
records the task. Running the command again with the same --id and content
prints the task again; the ID with other content fails with exists, an
unknown vchannel with unknown_vchannel, a dropped one with
vchannel_dropped. The command fails (exit status 1) when the task ends
failed.`,
		Example: `  cairn broadcast send --id ddl-1 --vchannel orders --vchannel payments --payload 'create index'
  cairn broadcast send --id trunc-7 --vchannel orders --ack sync --wait 30s --output json`,
		Args: cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			req := so.req
			if so.wait < 0 {
				return usagef("--wait must not be negative")
			}
			req.Wait = so.wait
			if so.wait == 0 {
				req.Wait = -1 // only record the task
			}
			if so.payload != "" {
				req.Payload = []byte(so.payload)
			}
			props, err := parsePairs("property", "KEY=VALUE", so.properties, true)
			if err != nil {
				return err
			}
			req.Properties = props
			t, err := c.Broadcast(cmd.Context(), req)
			if err != nil {
				return err
			}
			if err := printBroadcast(cmd.OutOrStdout(), o.out.json(), t); err != nil {
				return err
			}
			switch t.State {
			case client.BroadcastFailed:
				return fmt.Errorf("broadcast %s failed: %s", t.ID, t.Error)
			case client.BroadcastPending:
				fmt.Fprintf(cmd.ErrOrStderr(), "broadcast %s is still pending; the server finishes it (cairn broadcast describe %s)\n", t.ID, t.ID)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&so.req.ID, "id", "", "the broadcast's ID: sending it again shows the same task (required)")
	f.StringArrayVar(&so.req.VChannels, "vchannel", nil, "vchannel to send a copy to (repeatable; at least one)")
	f.StringVar(&so.payload, "payload", "", "the message's payload, as text")
	f.StringArrayVar(&so.properties, "property", nil, "KEY=VALUE property of the message (repeatable)")
	f.StringVar(&so.req.Ack, "ack", client.AckFast, "when a copy counts: fast (in the WAL) or sync (flushed)")
	f.StringArrayVar(&so.req.Resources, "resource", nil, "another resource lock to hold while appending (repeatable)")
	f.DurationVar(&so.wait, "wait", 10*time.Second, "how long the server runs the task before answering it pending (0: only record it; capped by the server, 20s by default)")
	_ = cmd.MarkFlagRequired("id")
	_ = cmd.MarkFlagRequired("vchannel")
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}

func newBroadcastListCmd(o *adminOptions) *cobra.Command {
	var state string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Table of broadcast tasks",
		Long: `Prints one row per broadcast task, in ID order; finished tasks are kept an
hour after they finish:

  BROADCAST  its ID
  STATE      pending, done or failed
  ACK        fast or sync
  ACKED      vchannels whose copy is acknowledged (or skipped), of all
  CREATED    when it was sent
  FINISHED   when it became done or failed, or -

--state keeps only the tasks in that state. With --output json: the
server's answer, {"broadcasts": [...]}.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			ts, err := c.ListBroadcasts(cmd.Context(), state)
			if err != nil {
				return err
			}
			if o.out.json() {
				if ts == nil {
					ts = []client.BroadcastTask{}
				}
				return printJSON(cmd.OutOrStdout(), struct {
					Broadcasts []client.BroadcastTask `json:"broadcasts"`
				}{ts})
			}
			rows := make([][]any, len(ts))
			for i, t := range ts {
				rows[i] = []any{t.ID, t.State, t.Ack, fmt.Sprintf("%d/%d", acked(t), len(t.Targets)),
					timeCell(t.CreatedAt), timePtrCell(t.FinishedAt)}
			}
			return table(cmd.OutOrStdout(), "BROADCAST\tSTATE\tACK\tACKED\tCREATED\tFINISHED", rows)
		}),
	}
	cmd.Flags().StringVar(&state, "state", "", "only tasks in this state: pending, done or failed")
	addOutputFlag(cmd, &o.out, `{"broadcasts": [...]}`)
	return cmd
}

func newBroadcastDescribeCmd(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe ID",
		Short: "One broadcast task",
		Long: `Prints a broadcast task, every field on its own line, then one target line
per vchannel: its pchannel and where its copy landed (id:OFFSET.INDEX,
"synced" once its pchannel is flushed past it), "pending" while it has not
landed, or "skipped: dropped" for a vchannel dropped before its copy was
sent. Fails with unknown_broadcast for an ID never sent, or deleted an hour
after its task finished.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			t, err := c.DescribeBroadcast(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printBroadcast(cmd.OutOrStdout(), o.out.json(), t)
		}),
	}
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}

func printBroadcast(w io.Writer, asJSON bool, t client.BroadcastTask) error {
	if asJSON {
		return printJSON(w, t)
	}
	rows := [][]any{
		{"broadcast", t.ID},
		{"state", t.State},
		{"ack", t.Ack},
		{"acked", fmt.Sprintf("%d/%d", acked(t), len(t.Targets))},
		{"created", timeCell(t.CreatedAt)},
		{"finished", timePtrCell(t.FinishedAt)},
		{"error", dash(t.Error)},
		{"version", t.Version},
	}
	for _, tg := range t.Targets {
		status := "pending"
		switch {
		case tg.Skipped != "":
			status = "skipped: " + tg.Skipped
		case tg.Appended != nil && tg.Synced:
			status = markCell(tg.Appended) + " synced"
		case tg.Appended != nil:
			status = markCell(tg.Appended)
		}
		rows = append(rows, []any{"target", tg.VChannel + " " + tg.PChannel + " " + status})
	}
	return table(w, "FIELD\tVALUE", rows)
}

// acked counts the targets of t whose copy counts as acknowledged under
// its ack mode, or that were skipped.
func acked(t client.BroadcastTask) int {
	n := 0
	for _, tg := range t.Targets {
		if tg.Skipped != "" || tg.Appended != nil && (t.Ack != client.AckSync || tg.Synced) {
			n++
		}
	}
	return n
}
