package system

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/cairnlog/cairn/cache"
	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// Config configures a System. Each field says its default; EnsureDefaults
// fills the zero fields with them, and Validate (after EnsureDefaults)
// reports values the system cannot run with. New does both.
type Config struct {
	// Layout names the objects in the bucket. Default: no prefix (the store
	// itself may carry one, as s3store's Prefix does).
	Layout segmentlog.Layout
	// Holder names this process in the lease records it writes. Default:
	// host-pid. In `cairn serve` it is also the node's ID, so that
	// Registry.Locate finds the node's address from the lease.
	Holder string
	// PChannels is the pchannel set: the pchannels a vchannel may bind to
	// and the only ones appends may name (coordinator.Config.PChannels).
	// Every process of a deployment must list the same ones. Default p0…p3.
	PChannels []string

	// LeaseTTL is how long an acquire or renew keeps a pchannel lease.
	// Default 10 s (docs/protocol.md, "Parameters").
	LeaseTTL time.Duration
	// LeaseMargin is the lease safety margin m. Default min(2.5 s, TTL/4).
	LeaseMargin time.Duration
	// RenewInterval is how often a writer renews its lease. Default
	// min(3 s, (TTL − margin)/3), which keeps I + 2·R ≤ TTL − m.
	RenewInterval time.Duration
	// WriteMode is how this process writes its pchannels (docs/architecture.md,
	// "Write modes"). Default WriteExclusive.
	WriteMode WriteMode
	// LeaseWait bounds how long a request for a pchannel whose lease a live
	// holder elsewhere has waits for its release or expiry before it fails
	// with a *BusyError. Default 2 s.
	LeaseWait time.Duration
	// TimeTickInterval: after a run of appends, a writer persists one
	// timetick-only batch once the pchannel has been quiet this long, so
	// that readers in other processes see time pass the last data.
	// Default 1 s; negative disables.
	TimeTickInterval time.Duration
	// OpenTimeout bounds opening a writer (acquire, recovery, fence) once
	// the lease is granted. Default 30 s.
	OpenTimeout time.Duration
	// IdleRelease: an exclusive writer that took no request for this long
	// (and holds no open transaction) is closed, which releases its lease
	// with its tail, so that an idle pchannel costs no renewals; the next
	// request opens a writer again, at once (a released lease needs no
	// expiry wait). The pool checks every IdleRelease/4. Default 1 min
	// (DefaultIdleRelease); negative keeps writers open.
	IdleRelease time.Duration

	// CacheBytes is the write-ahead cache budget shared by every writer and
	// reader of the process. Default cache.DefaultLocalBytes (256 MiB);
	// ConfigFromEnv sets cache.DefaultLambdaBytes in a Lambda container.
	CacheBytes int64
	// MaxBatchBytes bounds the payload bytes of one batch object
	// (segmentlog.WriterConfig.MaxBatchBytes) and of one append request.
	// Default 1 MiB.
	MaxBatchBytes int
	// NoCompaction leaves compaction out of the maintenance round and of
	// `cairn serve`: for a rolling upgrade, while binaries older than
	// compaction still flush or collect garbage on the bucket (they do not
	// know the grace of retired segment files). Default false.
	NoCompaction bool
	// ShutdownTimeout bounds Shutdown (the Lambda SIGTERM callback): Lambda
	// kills the process about 500 ms after SIGTERM. Default 400 ms.
	ShutdownTimeout time.Duration
	// ScannerStartupDelay holds reads back for this long after New, so
	// that a node in a crash loop spends its short lives persisting fences,
	// not serving reads (write-only recovery, Milvus's scanner startup
	// delay; HoldReads). Appends are never held back. Default 0: no pause.
	ScannerStartupDelay time.Duration

	Logger *slog.Logger     // default slog.Default()
	Now    func() time.Time // default time.Now
}

// Defaults of Config.
const (
	DefaultLeaseWait       = 2 * time.Second
	DefaultOpenTimeout     = 30 * time.Second
	DefaultIdleRelease     = time.Minute
	DefaultMaxBatchBytes   = 1 << 20
	DefaultShutdownTimeout = 400 * time.Millisecond

	// leaseRequestTimeout bounds one lease GET or CAS (docs/protocol.md R);
	// the margin must exceed it, so small margins get half of theirs.
	leaseRequestTimeout = time.Second
)

// WriteMode names how a process writes its pchannels.
type WriteMode string

const (
	// WriteExclusive holds a lease per pchannel and waits out another
	// holder's.
	WriteExclusive WriteMode = "exclusive"
	// WriteTakeover holds a lease too but takes a live one over at once.
	WriteTakeover WriteMode = "takeover"
	// WriteShared appends under the pchannel's shared term, holding no
	// lease: the mode of the Lambda node function.
	WriteShared WriteMode = "shared"
)

// ParseWriteMode parses a WriteMode name.
func ParseWriteMode(s string) (WriteMode, error) {
	switch m := WriteMode(s); m {
	case WriteExclusive, WriteTakeover, WriteShared:
		return m, nil
	}
	return "", fmt.Errorf("write mode %q: want exclusive, takeover or shared", s)
}

// EnsureDefaults sets every zero field to its default.
func (c *Config) EnsureDefaults() {
	if c.WriteMode == "" {
		c.WriteMode = WriteExclusive
	}
	if c.Holder == "" {
		h, _ := os.Hostname()
		c.Holder = h + "-" + strconv.Itoa(os.Getpid())
	}
	if len(c.PChannels) == 0 {
		for i := range coordinator.DefaultPChannelCount {
			c.PChannels = append(c.PChannels, "p"+strconv.Itoa(i))
		}
	}
	c.LeaseTTL = cmp.Or(c.LeaseTTL, coordinator.DefaultLeaseTTL)
	c.LeaseMargin = cmp.Or(c.LeaseMargin, min(coordinator.DefaultLeaseMargin, c.LeaseTTL/4))
	c.RenewInterval = cmp.Or(c.RenewInterval, min(3*time.Second, (c.LeaseTTL-c.LeaseMargin)/3))
	c.LeaseWait = cmp.Or(c.LeaseWait, DefaultLeaseWait)
	c.TimeTickInterval = cmp.Or(c.TimeTickInterval, time.Second)
	c.OpenTimeout = cmp.Or(c.OpenTimeout, DefaultOpenTimeout)
	c.IdleRelease = cmp.Or(c.IdleRelease, DefaultIdleRelease)
	c.CacheBytes = cmp.Or(c.CacheBytes, cache.DefaultLocalBytes)
	c.MaxBatchBytes = cmp.Or(c.MaxBatchBytes, DefaultMaxBatchBytes)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// LeaseRequestTimeout is R for lease GETs and CASes: 1 s, or half the
// margin when the margin is smaller (the coordinator requires R < m).
func (c Config) LeaseRequestTimeout() time.Duration {
	return min(leaseRequestTimeout, c.LeaseMargin/2)
}

// Validate reports a configuration the system cannot run with. Call it
// after EnsureDefaults: a zero field the defaults would fill is an error.
func (c Config) Validate() error {
	switch {
	case c.Logger == nil || c.Now == nil || c.Holder == "" || c.WriteMode == "":
		return errors.New("system: config without defaults (call EnsureDefaults first)")
	case c.LeaseTTL <= 0 || c.LeaseMargin < 0 || c.RenewInterval < 0 || c.LeaseWait < 0 || c.OpenTimeout < 0:
		return errors.New("system: lease durations must not be negative")
	case c.LeaseMargin >= c.LeaseTTL:
		return fmt.Errorf("system: lease margin %v must be below the lease TTL %v", c.LeaseMargin, c.LeaseTTL)
	case c.RenewInterval <= 0 || c.RenewInterval+2*c.LeaseRequestTimeout() > c.LeaseTTL-c.LeaseMargin:
		// docs/protocol.md, "Parameters": I + 2·R_cas ≤ TTL − m.
		return fmt.Errorf("system: renew interval %v + 2 × request timeout %v must fit in TTL %v − margin %v",
			c.RenewInterval, c.LeaseRequestTimeout(), c.LeaseTTL, c.LeaseMargin)
	case 2*c.LeaseTTL+3*segmentlog.DefaultPutTimeout+c.LeaseMargin > snapshot.DefaultMinAge:
		// docs/protocol.md, "Parameters": 2·TTL + 3R + skew ≤ min_age, skew
		// bounded by the margin: GC must never delete a slot a zombie
		// could still PUT to before its lease deadline passes.
		return fmt.Errorf("system: lease TTL %v too long: 2 × TTL + 3 × PUT timeout %v + margin %v must stay within the WAL's GC min age %v",
			c.LeaseTTL, segmentlog.DefaultPutTimeout, c.LeaseMargin, snapshot.DefaultMinAge)
	case c.MaxBatchBytes < 1 || c.MaxBatchBytes > segmentlog.MaxBatchBytes/2:
		return fmt.Errorf("system: max batch bytes %d out of range 1..%d", c.MaxBatchBytes, segmentlog.MaxBatchBytes/2)
	case c.WriteMode != WriteExclusive && c.WriteMode != WriteTakeover && c.WriteMode != WriteShared:
		return fmt.Errorf("system: write mode %q: want exclusive, takeover or shared", c.WriteMode)
	case c.ShutdownTimeout < 0 || c.ScannerStartupDelay < 0:
		return errors.New("system: shutdown timeout and scanner startup delay must not be negative")
	}
	seen := map[string]bool{}
	for _, p := range c.PChannels {
		if err := segmentlog.ValidateName("pchannel", p); err != nil {
			return fmt.Errorf("system: pchannels: %w", err)
		}
		if seen[p] {
			return fmt.Errorf("system: pchannel %q listed twice", p)
		}
		seen[p] = true
	}
	if err := (cache.Config{MaxBytes: c.CacheBytes}).Validate(); err != nil {
		return fmt.Errorf("system: cache bytes: %w", err)
	}
	return nil
}

// Lease is the coordinator's view of the lease timing.
func (c Config) Lease() coordinator.LeaseConfig {
	return coordinator.LeaseConfig{TTL: c.LeaseTTL, Margin: c.LeaseMargin}
}

// Coordinator is the configuration of the registry, and of a Balancer or
// Node of the same deployment.
func (c Config) Coordinator() coordinator.Config {
	return coordinator.Config{Layout: c.Layout, PChannels: c.PChannels, Logger: c.Logger, Now: c.Now}
}

// broadcast is the configuration of the broadcaster: the registry's layout,
// clock and logger, the coordinator's defaults otherwise.
func (c Config) broadcast() coordinator.BroadcastConfig {
	return coordinator.BroadcastConfig{Layout: c.Layout, Now: c.Now, Logger: c.Logger}
}
