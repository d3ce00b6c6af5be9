package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// Phases are the parts of a run, in the order Run measures them.
var Phases = []string{"append", "latency", "tail", "catchup", "takeover", "window", "http", "producer", "lambda"}

// DefaultDuration is Config.Duration's default.
const DefaultDuration = 5 * time.Second

const (
	// producers is the number of concurrent appenders per pchannel in the
	// throughput phases: enough to keep the W batches of group commit full.
	producers = 64
	// window is the Writer's W: PUTs in flight per pchannel.
	window = segmentlog.FenceWindow
	// sliceLen is the length of one slice of a comparison: the two sides
	// alternate every sliceLen, so that a noisy neighbour weighs on both.
	sliceLen = 500 * time.Millisecond
)

// Config configures Run. Zero fields take the documented defaults.
type Config struct {
	// Store receives every object of the run: give it an empty store or
	// prefix of its own. Run never deletes what it wrote. Required.
	Store objstore.Store
	// StoreName is recorded in the report ("minio", "fs").
	StoreName string
	// Duration is how long each side of each comparison measures (Cairn
	// and the raw store get Duration each, interleaved in slices). A full
	// run takes about 20 × Duration plus a minute. Default 5 s.
	Duration time.Duration
	// Only, if not empty, runs just these phases (see Phases).
	Only []string
	// Lambda, if set, lets the lambda phase run the node function on the
	// Lambda emulator; without it a full run skips that phase.
	Lambda *LambdaTarget
	// Progress receives one line as each phase starts. Default: none.
	Progress io.Writer
	// Logger receives the logs of the writers, flushers and HTTP server
	// under test. Default: errors to standard error.
	Logger *slog.Logger
}

// Validate reports a configuration Run cannot use.
func (c Config) Validate() error {
	if c.Store == nil {
		return errors.New("bench: no store")
	}
	if c.Duration < 0 {
		return fmt.Errorf("bench: negative duration %v", c.Duration)
	}
	for _, p := range c.Only {
		if !slices.Contains(Phases, p) {
			return fmt.Errorf("bench: unknown phase %q; phases are %s", p, strings.Join(Phases, ", "))
		}
	}
	return nil
}

func (c *Config) withDefaults() {
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
}

// runner carries one Run's configuration and report.
type runner struct {
	cfg    Config
	store  objstore.Store
	layout segmentlog.Layout
	log    *slog.Logger
	rep    *Report
}

// Run measures every phase of cfg and returns the report with its targets
// checked. It stops at the first phase that fails, or when ctx ends.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.withDefaults()
	start := time.Now()
	r := &runner{cfg: cfg, store: cfg.Store, log: cfg.Logger, rep: &Report{
		Format: FormatVersion, Store: cfg.StoreName, Duration: cfg.Duration.String(),
		Go: runtime.Version(), CPUs: runtime.NumCPU(), Started: start.UTC(),
		Metrics: map[string]Metric{},
	}}
	phases := []struct {
		name string
		run  func(context.Context) error
	}{
		{"append", r.appendThroughput},
		{"latency", r.appendLatency},
		{"tail", r.tail},
		{"catchup", r.catchUp},
		{"takeover", r.takeover},
		{"window", r.window},
		{"http", r.httpAppend},
		{"producer", r.httpProducer},
		{"lambda", r.lambda},
	}
	for _, p := range phases {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, p.name) {
			continue
		}
		if p.name == "lambda" && cfg.Lambda == nil && len(cfg.Only) == 0 {
			fmt.Fprintln(cfg.Progress, "bench: lambda phase skipped: it needs --store minio and the source tree (it builds the node function)")
			continue
		}
		if err := p.run(ctx); err != nil {
			return nil, fmt.Errorf("bench %s: %w", p.name, err)
		}
	}
	if rss, err := peakRSS(); err == nil {
		r.rep.set("peak_rss_mib", rss)
	} else {
		fmt.Fprintf(cfg.Progress, "bench: peak RSS unknown: %v\n", err)
	}
	r.rep.Elapsed = time.Since(start).Round(100 * time.Millisecond).String()
	r.rep.check()
	return r.rep, nil
}

func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "bench: %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// slices cuts Duration into the slices of each side of a comparison: at
// least three, of about sliceLen.
func (r *runner) slices() (n int, each time.Duration) {
	n = max(3, int((r.cfg.Duration+sliceLen/2)/sliceLen))
	return n, r.cfg.Duration / time.Duration(n)
}

// openWriter opens a writer of pchannel on store (nil: the run's store)
// with the production defaults, no timetick batches (they would land
// between the slices of a comparison), and mod's changes.
func (r *runner) openWriter(ctx context.Context, pchannel string, store objstore.Store, mod func(*segmentlog.WriterConfig)) (*segmentlog.Writer, error) {
	cfg := segmentlog.WriterConfig{PChannel: pchannel, Layout: r.layout, Holder: "bench", TimeTickInterval: -1, Logger: r.log}
	if mod != nil {
		mod(&cfg)
	}
	if store == nil {
		store = r.store
	}
	leases, err := coordinator.NewLeases(store, r.layout, coordinator.LeaseConfig{})
	if err != nil {
		return nil, err
	}
	return segmentlog.OpenWriter(ctx, cfg, store, leases)
}

// closeWriters closes ws, releasing their leases.
func closeWriters(ws ...*segmentlog.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, w := range ws {
		if w != nil {
			_ = w.Close(ctx) // the figures are taken; a lease not released just expires
		}
	}
}

// randomBytes returns n bytes that do not compress.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}

// warmUp is the untimed run before a comparison's slices.
func (r *runner) warmUp() time.Duration { return min(r.cfg.Duration/5, time.Second) }

// peakRSS reads the process's peak resident set size (VmHWM) in MiB.
func peakRSS() (float64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmHWM line %q", line)
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("VmHWM line %q: %w", line, err)
		}
		return kb / 1024, nil
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
