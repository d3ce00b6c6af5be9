package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cairnlog/cairn/cmd/cairn/internal/export"
	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/infra/objstore/s3store"
	"github.com/cairnlog/cairn/segmentlog"
)

type exportOptions struct {
	store, dataDir               string
	pchannel, vchannel, snapshot string
	from, to, out                string
}

func newExportCmd() *cobra.Command {
	var o exportOptions
	cmd := &cobra.Command{
		Use:   "export --out FILE.parquet (--pchannel P [--vchannel V] [--from POS] [--to id:O.I] | --snapshot NAME)",
		Short: "Write a pchannel's, vchannel's or snapshot's history as a Parquet file",
		Long: `Writes messages as one Parquet file (zstd) for data tools: DuckDB, polars,
Spark. The columns are those of segment format 2 (docs/segments.md), with
vchannel and type as plain strings; messages of every type are written,
control messages included.

It reads the store directly, as 'cairn serve' does (--store, --data-dir, and
CAIRN_S3_* for --store s3), not through a server: segments below the flush
checkpoint, then the WAL up to its tail as of the read. A server may keep
running on the store meanwhile.

  --pchannel P                 the pchannel's messages from --from (default
                               earliest: id:OFFSET.INDEX, timetick:T) up to
                               --to (exclusive, id:OFFSET.INDEX) or the tail
  --pchannel P --vchannel V    only vchannel V's messages of them
  --snapshot NAME              a committed snapshot's messages, vchannel by
                               vchannel

A progress bar (messages written) is drawn on standard error when it is a
terminal. The file is written beside --out and renamed into place when
complete; the last line says how many messages it holds.`,
		Example: `  cairn export --pchannel p0 --out p0.parquet
  cairn export --pchannel p1 --vchannel orders --from id:8.0 --to id:100.0 --out orders.parquet
  cairn export --snapshot nightly --out nightly.parquet
  duckdb -c "SELECT vchannel, type, count(*) FROM 'p0.parquet' GROUP BY ALL"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runExport(cmd.Context(), o, os.Getenv, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.store, "store", "fs", "fs (the directory --data-dir) or s3 (S3 or MinIO from CAIRN_S3_*)")
	f.StringVar(&o.dataDir, "data-dir", ".cairn-data", "directory of the filesystem store (--store fs)")
	f.StringVar(&o.pchannel, "pchannel", "", "the pchannel to export")
	f.StringVar(&o.vchannel, "vchannel", "", "only this vchannel of --pchannel")
	f.StringVar(&o.from, "from", "earliest", "first position: earliest, id:OFFSET.INDEX, after:id:OFFSET.INDEX or timetick:T")
	f.StringVar(&o.to, "to", "", "end before this position, id:OFFSET.INDEX (default: the tail)")
	f.StringVar(&o.snapshot, "snapshot", "", "export this committed snapshot instead of a range")
	f.StringVar(&o.out, "out", "", "the Parquet file to write (required)")
	return cmd
}

func runExport(ctx context.Context, o exportOptions, getenv func(string) string, out, errOut io.Writer) error {
	if o.out == "" {
		return usagef("--out is required")
	}
	if (o.pchannel == "") == (o.snapshot == "") {
		return usagef("give --pchannel or --snapshot (one of them)")
	}
	if o.snapshot != "" && (o.vchannel != "" || o.to != "" || o.from != "earliest") {
		return usagef("--vchannel, --from and --to select a range of --pchannel, not of a snapshot")
	}
	ro := export.RangeOptions{PChannel: o.pchannel, VChannel: o.vchannel}
	if o.pchannel != "" {
		var err error
		if ro.From, err = parseExportPosition(o.from); err != nil {
			return usagef("--from: %v", err)
		}
		if o.to != "" {
			to, err := parseExportPosition(o.to)
			if err != nil || to.Kind != segmentlog.StartAtID {
				return usagef("--to %q: want id:OFFSET.INDEX", o.to)
			}
			ro.To = &to.ID
		}
	}
	if o.store == "fs" {
		if _, err := os.Stat(o.dataDir); err != nil {
			return fmt.Errorf("export: data directory: %w", err)
		}
	}
	env, err := api.LoadEnv(getenv)
	if err != nil {
		return err
	}
	store, _, err := openStore(ctx, serveOptions{store: o.store, dataDir: o.dataDir}, s3store.ConfigFromEnv(getenv))
	if err != nil {
		return err
	}
	layout := env.System.Layout

	tmp, err := os.CreateTemp(filepath.Dir(o.out), "."+filepath.Base(o.out)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	source := "pchannel " + o.pchannel
	switch {
	case o.snapshot != "":
		source = "snapshot " + o.snapshot
	case o.vchannel != "":
		source = "vchannel " + o.vchannel + " of pchannel " + o.pchannel
	}
	// The Parquet writer closes a writer that is an io.Closer: hide tmp's
	// Close, to sync it first.
	w, err := export.NewWriter(struct{ io.Writer }{tmp}, source)
	if err != nil {
		return err
	}
	bar := exportProgress(errOut)
	add := func(d segmentlog.Delivery) error {
		if bar != nil {
			_ = bar.Add(1)
		}
		return w.Add(d)
	}
	var n int64
	if o.snapshot != "" {
		_, n, err = export.Snapshot(ctx, store, layout, o.snapshot, add)
	} else {
		n, err = export.Range(ctx, store, layout, ro, add)
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), o.out); err != nil {
		return err
	}
	fmt.Fprintf(out, "exported %d messages (%s) to %s\n", n, source, o.out)
	return nil
}

// exportProgress is a bar counting messages on errOut, if it is a
// terminal; nil otherwise.
func exportProgress(errOut io.Writer) *progressbar.ProgressBar {
	f, ok := errOut.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(errOut),
		progressbar.OptionSetDescription("export"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("messages"),
		progressbar.OptionShowIts(),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	)
}

// parseExportPosition parses a position (segmentlog.ParsePosition) where
// an export may start or end: not latest, which holds nothing yet.
func parseExportPosition(s string) (segmentlog.Position, error) {
	pos, err := segmentlog.ParsePosition(s)
	if err == nil && pos.Kind == segmentlog.StartLatest {
		return segmentlog.Position{}, fmt.Errorf("position %q: an export of the messages from latest is empty; give earliest, id:OFFSET.INDEX or timetick:T", s)
	}
	return pos, err
}
