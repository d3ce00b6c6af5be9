package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/cmd/cairn/internal/bench"
	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/s3store"
)

type benchOptions struct {
	store      string // "minio" or "fs"
	dataDir    string // fs: where; default a temporary directory, removed after
	duration   time.Duration
	json       bool
	out        string
	cpuProfile string
	only       []string
}

func newBenchCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Cairn against the raw object store it runs on",
		Long: `bench measures, in one run, append throughput and latency, tail latency
(in-process and long-poll), catch-up reads from the WAL and from Arrow
segments, lease takeover (also with a full idempotency window) and appends
over the HTTP API — each next to the raw object store doing the same work
with the same object sizes and concurrency — and checks every figure
against its target.

--store minio starts a private MinIO (the pinned binary: $CAIRN_MINIO_BIN,
or where 'make minio' puts it) and removes it afterwards; --store fs uses a
fresh directory. It prints a table (or, with --json, the JSON report) on
standard output, progress on standard error, and writes the JSON report to
--out. Every key and unit is listed in README.md, "Benchmarks". A missed
target is not an error: the exit status is non-zero only when the run
itself fails.`,
		Example: `  cairn bench --store minio
  cairn bench --store fs --duration 1s --json
  cairn bench --store minio --only append --cpuprofile cpu.pprof`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBench(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.store, "store", "minio", "object store: minio (a private MinIO started for the run) or fs (a local directory)")
	f.StringVar(&o.dataDir, "data-dir", "", "directory of the fs store (default: a temporary directory, removed afterwards)")
	f.DurationVar(&o.duration, "duration", bench.DefaultDuration, "measuring time of each side of each comparison; a run takes about 20 times this, plus a minute")
	f.BoolVar(&o.json, "json", false, "print the JSON report instead of the table")
	f.StringVar(&o.out, "out", "bench.json", `also write the JSON report to this file ("" for none)`)
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	f.StringSliceVar(&o.only, "only", nil, "run only these phases: append, latency, tail, catchup, takeover, window, http, producer, lambda (lambda needs --store minio and the source tree)")
	return cmd
}

// runBench opens the store o names, runs the benchmark and reports it.
func runBench(ctx context.Context, o benchOptions, stdout, stderr io.Writer) error {
	store, lambda, closeStore, err := openBenchStore(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer closeStore()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := bench.Run(ctx, bench.Config{Store: store, StoreName: o.store, Duration: o.duration, Only: o.only, Lambda: lambda, Progress: stderr})
	if err != nil {
		return err
	}
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			return fmt.Errorf("bench report: %w", err)
		}
		err = rep.WriteJSON(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("bench report %s: %w", o.out, err)
		}
	}
	if o.json {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteTable(stdout)
}

// openBenchStore returns the store of the run, what the lambda phase needs
// (nil unless the store is MinIO and the phase is to run), and what removes
// them.
func openBenchStore(ctx context.Context, o benchOptions, stderr io.Writer) (objstore.Store, *bench.LambdaTarget, func(), error) {
	switch o.store {
	case "minio":
		fmt.Fprintln(stderr, "bench: starting MinIO")
		srv, err := miniotest.Start()
		if err != nil {
			return nil, nil, nil, err
		}
		var cleanups []func()
		stop := func() {
			for _, c := range cleanups {
				c()
			}
			if err := srv.Stop(); err != nil {
				fmt.Fprintf(stderr, "bench: stop MinIO: %v\n", err)
			}
		}
		s, err := srv.NewStore(ctx, "bench", "")
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
		var lambda *bench.LambdaTarget
		if len(o.only) == 0 || slices.Contains(o.only, "lambda") {
			dir, err := os.MkdirTemp("", "cairn-bench-bootstrap-")
			if err != nil {
				stop()
				return nil, nil, nil, err
			}
			cleanups = append(cleanups, func() { os.RemoveAll(dir) })
			fmt.Fprintln(stderr, "bench: building the node function for the lambda phase")
			paths, err := lambdaemu.Build(ctx, ".", dir, "github.com/cairnlog/cairn/functions/node")
			if err != nil {
				// Not in the source tree: the phase is skipped (or,
				// with --only lambda, refused by bench.Run).
				fmt.Fprintf(stderr, "bench: cannot build the node function here (%v)\n", err)
			} else {
				user, pass := srv.Credentials()
				lambda = &bench.LambdaTarget{Bootstrap: paths[0], S3: s3store.Config{
					Endpoint: srv.Endpoint(), Region: s3store.DefaultRegion, Bucket: "bench", PathStyle: true, AccessKey: user, SecretKey: pass,
				}}
			}
		}
		return s, lambda, stop, nil
	case "fs":
		dir, remove := o.dataDir, func() {}
		if dir == "" {
			tmp, err := os.MkdirTemp("", "cairn-bench-")
			if err != nil {
				return nil, nil, nil, err
			}
			dir, remove = tmp, func() { os.RemoveAll(tmp) }
		}
		s, err := objstore.NewFS(dir)
		if err != nil {
			remove()
			return nil, nil, nil, fmt.Errorf("open store %s: %w", dir, err)
		}
		return s, nil, remove, nil
	default:
		return nil, nil, nil, usagef("--store %q: want minio or fs", o.store)
	}
}
