package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cairnlog/cairn/client"
)

func newSnapshotCmd() *cobra.Command {
	var o adminOptions
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Manage snapshots: create, list, describe, drop, restore",
		Long: `snapshot manages the snapshots of a Cairn server: named, immutable manifests
over the flushed segments of a set of vchannels. restore turns a snapshot
into new vchannels whose history is the snapshot's.`,
		Args: cobra.NoArgs,
	}
	addConnFlags(cmd, &o.conn)
	cmd.AddCommand(newSnapshotCreateCmd(&o), newSnapshotListCmd(&o), newSnapshotDescribeCmd(&o),
		newSnapshotDropCmd(&o), newSnapshotRestoreCmd(&o))
	return cmd
}

func newSnapshotCreateCmd(o *adminOptions) *cobra.Command {
	var vchannels []string
	cmd := &cobra.Command{
		Use:   "create SNAPSHOT --vchannel V [--vchannel V ...]",
		Short: "Take a snapshot of vchannels",
		Long: `Takes a snapshot of the --vchannel vchannels: pins them, flushes their
pchannels and commits the manifest, then prints the snapshot as describe
does. Every message acked on them before the command is in it. Running it
again with the same name and vchannels prints the snapshot again; the name
taken with other vchannels fails with exists, an unknown vchannel with
unknown_vchannel, a dropped one with vchannel_dropped.`,
		Example: `  cairn snapshot create nightly --vchannel orders --vchannel payments`,
		Args:    cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			s, err := c.CreateSnapshot(cmd.Context(), args[0], vchannels)
			if err != nil {
				return err
			}
			return printSnapshot(cmd.OutOrStdout(), o.out.json(), s)
		}),
	}
	cmd.Flags().StringArrayVar(&vchannels, "vchannel", nil, "vchannel to include (repeatable; at least one)")
	_ = cmd.MarkFlagRequired("vchannel")
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}

func newSnapshotListCmd(o *adminOptions) *cobra.Command {
	var vchannel string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Table of snapshots",
		Long: `Prints one row per snapshot not dropped, in name order:

  SNAPSHOT   its name
  STATE      committed, or pending while it is being taken
  VCHANNELS  the vchannels it holds
  MESSAGES   messages in its segments, control messages (each vchannel's
             create message) included
  SEGMENTS   segment files in its manifest
  CREATED    when it was taken

--vchannel keeps the snapshots that include that vchannel. With --output
json: the server's answer, {"snapshots": [...]}.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			ss, err := c.Snapshots(cmd.Context(), vchannel)
			if err != nil {
				return err
			}
			if o.out.json() {
				if ss == nil {
					ss = []client.Snapshot{}
				}
				return printJSON(cmd.OutOrStdout(), struct {
					Snapshots []client.Snapshot `json:"snapshots"`
				}{ss})
			}
			rows := make([][]any, len(ss))
			for i, s := range ss {
				rows[i] = []any{s.Name, s.State, listCell(s.VChannels), s.Messages, s.Segments, timeCell(s.CreatedAt)}
			}
			return table(cmd.OutOrStdout(), "SNAPSHOT\tSTATE\tVCHANNELS\tMESSAGES\tSEGMENTS\tCREATED", rows)
		}),
	}
	cmd.Flags().StringVar(&vchannel, "vchannel", "", "only snapshots that include this vchannel")
	addOutputFlag(cmd, &o.out, `{"snapshots": [...]}`)
	return cmd
}

func newSnapshotDescribeCmd(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe SNAPSHOT",
		Short: "One snapshot",
		Long: `Prints a snapshot, every field on its own line: state, vchannels, the
checkpoint it cut each pchannel at, its timetick (every message of its
vchannels at or below it is in the snapshot), what its manifest holds, and
when it was taken. Fails with unknown_snapshot for an unknown (or dropped)
name.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			s, err := c.Snapshot(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printSnapshot(cmd.OutOrStdout(), o.out.json(), s)
		}),
	}
	addOutputFlag(cmd, &o.out, "the server's answer")
	return cmd
}

func newSnapshotDropCmd(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drop SNAPSHOT",
		Short: "Drop a snapshot",
		Long: `Drops a snapshot: its pins are released and its files go to GC, except
those a restored vchannel still uses. The name may be used again. Fails
with unknown_snapshot for an unknown name.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.conn.client(cmd)
			if err != nil {
				return err
			}
			if err := c.DropSnapshot(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "dropped snapshot %s\n", args[0])
			return err
		},
	}
	return cmd
}

type restoreOptions struct {
	targets []string
	jobID   string
	noWait  bool
	poll    time.Duration
}

func newSnapshotRestoreCmd(o *adminOptions) *cobra.Command {
	var ro restoreOptions
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT --target SOURCE=NEW [--target ...]",
		Short: "Restore a snapshot into new vchannels",
		Long: `Restores a snapshot: each of its vchannels (SOURCE) becomes a new vchannel
(NEW) whose history is the snapshot's; every vchannel of the snapshot needs
a --target, and no NEW may exist. The restore is a job on the server;
restore waits for it, drawing a progress bar when standard output is a
terminal, else printing a line whenever its progress changes (to standard
error with --output json), then prints the finished job. consume --vchannel
NEW then reads the restored history first.

--job-id names the job (default: a fresh ID): running the command again with
the same --job-id and targets resumes or shows that job. --no-wait prints
the job as it started and returns. It fails (exit status 1) when the job
ends rolled_back or failed; before the job starts, with unknown_snapshot,
exists (a NEW vchannel exists, or --job-id names another restore),
wrong_state (the snapshot is not committed) or invalid (the targets do not
map exactly the snapshot's vchannels).`,
		Example: `  cairn snapshot restore nightly --target orders=orders-restored
  cairn snapshot restore nightly --target orders=o2 --job-id restore-1 --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.out.validate(); err != nil {
				return err
			}
			targets, err := parsePairs("target", "SOURCE=NEW", ro.targets, false)
			if err != nil {
				return err
			}
			c, err := o.conn.client(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			job, err := c.Restore(ctx, args[0], client.RestoreOptions{JobID: ro.jobID, Targets: targets})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !ro.noWait {
				progress := restoreProgress(w, cmd.ErrOrStderr(), o.out.json(), job.ID)
				job, err = c.WaitRestore(ctx, job.ID, ro.poll, progress.update)
				progress.finish()
				if err != nil {
					return err
				}
			}
			if err := printRestore(w, o.out.json(), job); err != nil {
				return err
			}
			if job.State == client.RestoreRolledBack || job.State == client.RestoreFailed {
				return fmt.Errorf("restore job %s %s: %s", job.ID, job.State, job.Error)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&ro.targets, "target", nil, "SOURCE=NEW: restore the snapshot's vchannel SOURCE as the new vchannel NEW (repeatable)")
	f.StringVar(&ro.jobID, "job-id", "", "name of the restore job, to resume or repeat it (default: a fresh ID)")
	f.BoolVar(&ro.noWait, "no-wait", false, "print the job as it started, without waiting for it")
	f.DurationVar(&ro.poll, "poll", 200*time.Millisecond, "how often to ask for the job's progress")
	_ = cmd.MarkFlagRequired("target")
	addOutputFlag(cmd, &o.out, "the finished job")
	return cmd
}

// progressView shows a restore's progress: a bar when the output is a
// terminal, else one line per change (to standard error with --output
// json, which keeps standard output to the job itself).
type progressView struct {
	bar   *progressbar.ProgressBar
	lines io.Writer
	id    string
	last  string
}

func restoreProgress(out, errOut io.Writer, asJSON bool, id string) *progressView {
	p := &progressView{id: id, lines: out}
	if asJSON {
		p.lines = errOut
	}
	if f, ok := out.(*os.File); ok && !asJSON && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(-1,
			progressbar.OptionSetWriter(out),
			progressbar.OptionSetDescription("restore "+id),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *progressView) update(j client.RestoreJob) {
	if p.bar != nil {
		if p.bar.GetMax() != j.Total && j.Total > 0 {
			p.bar.ChangeMax(j.Total)
		}
		_ = p.bar.Set(j.Done)
		return
	}
	line := fmt.Sprintf("restore %s: %s %d/%d", p.id, j.State, j.Done, j.Total)
	if line != p.last {
		p.last = line
		fmt.Fprintln(p.lines, line)
	}
}

func (p *progressView) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

func printRestore(w io.Writer, asJSON bool, j client.RestoreJob) error {
	if asJSON {
		return printJSON(w, j)
	}
	var targets []string
	for _, src := range slices.Sorted(maps.Keys(j.Targets)) {
		targets = append(targets, src+"="+j.Targets[src])
	}
	return table(w, "FIELD\tVALUE", [][]any{
		{"job", j.ID},
		{"snapshot", j.Snapshot},
		{"state", j.State},
		{"progress", fmt.Sprintf("%d/%d", j.Done, j.Total)},
		{"targets", listCell(targets)},
		{"error", dash(j.Error)},
	})
}

func printSnapshot(w io.Writer, asJSON bool, s client.Snapshot) error {
	if asJSON {
		return printJSON(w, s)
	}
	var cuts []string
	for _, c := range s.Cuts {
		cuts = append(cuts, fmt.Sprintf("%s@%d", c.PChannel, c.Checkpoint))
	}
	return table(w, "FIELD\tVALUE", [][]any{
		{"snapshot", s.Name},
		{"state", s.State},
		{"vchannels", listCell(s.VChannels)},
		{"cuts", listCell(cuts)},
		{"timetick", s.TimeTick},
		{"messages", fmt.Sprintf("%d (control messages included: each vchannel's create message)", s.Messages)},
		{"segments", s.Segments},
		{"bytes", s.Bytes},
		{"created", timeCell(s.CreatedAt)},
		{"version", s.Version},
	})
}
