package api

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

// MaxOffset is the largest WAL offset the API accepts in a position or an
// expected_offset: 2^53−1, so that every offset is exact as a JSON number in
// any client (JavaScript's doubles included). A pchannel appending a batch
// every microsecond reaches it after 285 years.
const MaxOffset = 1<<53 - 1

// Config configures a Server. Zero fields take the documented defaults;
// Validate reports values the server cannot run with.
type Config struct {
	// Layout names the objects in the bucket. Default: no prefix (the store
	// itself may carry one, as s3store's Prefix does).
	Layout segmentlog.Layout
	// Holder names this process in the lease records it writes. Default:
	// host-pid. In `cairn serve` it is also the node's ID, so that
	// Registry.Locate finds the node's address from the lease.
	Holder string
	// PChannels is the pchannel set of the vchannel registry: the
	// pchannels a new vchannel may bind to (coordinator.Config.PChannels).
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
	// "Write modes"): WriteExclusive (default) holds a lease per pchannel
	// and waits out another holder's; WriteTakeover holds one too but takes
	// a live lease over at once; WriteShared appends under the pchannel's
	// shared term, holding no lease — the mode of the Lambda node function.
	WriteMode WriteMode
	// LeaseWait bounds how long a request for a pchannel whose lease a live
	// holder elsewhere has waits for its release or expiry before it is
	// answered 503 with Retry-After. Default 2 s.
	LeaseWait time.Duration
	// TimeTickInterval: after a run of appends, the pool persists one
	// timetick-only batch once the pchannel has been quiet this long, so
	// that readers in other processes see time pass the last data.
	// Default 1 s; negative disables.
	TimeTickInterval time.Duration
	// OpenTimeout bounds opening a writer (acquire, recovery, fence) once
	// the lease is granted. Default 30 s.
	OpenTimeout time.Duration

	// CacheBytes is the write-ahead cache budget shared by every writer and
	// reader of the process. Default cache.DefaultLocalBytes (256 MiB);
	// LoadEnv defaults to cache.DefaultLambdaBytes in a Lambda container.
	CacheBytes int64
	// MaxBatchBytes bounds the payload bytes of one append request and of
	// one batch object (segmentlog.WriterConfig.MaxBatchBytes). Default
	// 1 MiB.
	MaxBatchBytes int
	// MaxBodyBytes bounds a request body. Default 2 × MaxBatchBytes + 64 KiB:
	// room for a full batch in base64 JSON. Lambda Function URLs accept at
	// most 6 MB.
	MaxBodyBytes int64
	// MaxAppendMessages bounds the messages of one append request. Default
	// 10,000.
	MaxAppendMessages int

	// MaxReadMessages caps the max parameter of a read. Default 10,000;
	// a read without max returns at most DefaultReadMessages (100).
	MaxReadMessages int
	// MaxReadBytes bounds the payload bytes of one read response (at least
	// one message is always returned). Default 4 MiB, so that a response
	// stays under Lambda's 6 MB even in base64.
	MaxReadBytes int
	// MaxWait caps the wait parameter of a read (long poll) and the wait
	// of a broadcast request. Default 20 s; a Lambda function's timeout
	// must exceed it.
	MaxWait time.Duration
	// ScannerStartupDelay holds reads back for this long after the server
	// starts, so that a node in a crash loop spends its short lives
	// persisting fences, not serving reads (write-only recovery, Milvus's
	// scanner startup delay). Appends are never held back; a read with
	// ignore_pause=true is served at once. Default 0: no pause.
	ScannerStartupDelay time.Duration
	// NoCompaction leaves the maintenance round's "compact" task out: for
	// a rolling upgrade, while binaries older than compaction still flush
	// or collect garbage on the bucket (they do not know the grace of
	// retired segment files). Default false: compaction runs.
	NoCompaction bool
	// MaxWaiters bounds the reads waiting at the tail at once; more are
	// answered 429 with Retry-After. Default 1,024.
	MaxWaiters int

	// Connection limits of HTTPServer and Listener (cairn serve; a Lambda
	// function's URL has its own). HeaderTimeout: reading a request's
	// headers, default 10 s. BodyTimeout: reading a request's body, default
	// 60 s (2 MiB at 35 KB/s). WriteTimeout: writing the answer, from the
	// end of the headers, default 60 s; a long poll (a read's or a
	// broadcast's wait) adds its wait. IdleTimeout: a keep-alive connection
	// between requests, default 60 s. MaxConns: open connections; more
	// wait in the listen backlog until one closes, default 1,024. A
	// negative duration turns that timeout off.
	HeaderTimeout time.Duration
	BodyTimeout   time.Duration
	WriteTimeout  time.Duration
	IdleTimeout   time.Duration
	MaxConns      int

	// Token, if set, is required as "Authorization: Bearer <token>" on
	// every request but GET and HEAD /healthz (compared in constant time, never
	// logged). Lambda functions leave it empty: their URLs use AWS_IAM.
	Token string
	// ShutdownTimeout bounds Shutdown (the Lambda SIGTERM callback): Lambda
	// kills the process about 500 ms after SIGTERM. Default 400 ms.
	ShutdownTimeout time.Duration

	Logger *slog.Logger     // default slog.Default()
	Now    func() time.Time // default time.Now
}

// Defaults of Config.
const (
	DefaultLeaseWait         = 2 * time.Second
	DefaultOpenTimeout       = 30 * time.Second
	DefaultMaxBatchBytes     = 1 << 20
	DefaultMaxAppendMessages = 10_000
	DefaultReadMessages      = 100
	DefaultMaxReadMessages   = 10_000
	DefaultMaxReadBytes      = 4 << 20
	DefaultMaxWait           = 20 * time.Second
	DefaultMaxWaiters        = 1024
	DefaultShutdownTimeout   = 400 * time.Millisecond
	DefaultHeaderTimeout     = 10 * time.Second
	DefaultBodyTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxConns          = 1024

	// leaseRequestTimeout bounds one lease GET or CAS (docs/protocol.md R);
	// the margin must exceed it, so small margins get half of theirs.
	leaseRequestTimeout = time.Second
)

// WriteMode names how a process writes its pchannels.
type WriteMode string

const (
	WriteExclusive WriteMode = "exclusive"
	WriteTakeover  WriteMode = "takeover"
	WriteShared    WriteMode = "shared"
)

// ParseWriteMode parses a WriteMode name.
func ParseWriteMode(s string) (WriteMode, error) {
	switch m := WriteMode(s); m {
	case WriteExclusive, WriteTakeover, WriteShared:
		return m, nil
	}
	return "", fmt.Errorf("write mode %q: want exclusive, takeover or shared", s)
}

func (c Config) withDefaults() Config {
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
	if c.LeaseTTL == 0 {
		c.LeaseTTL = coordinator.DefaultLeaseTTL
	}
	if c.LeaseMargin == 0 {
		c.LeaseMargin = min(coordinator.DefaultLeaseMargin, c.LeaseTTL/4)
	}
	if c.RenewInterval == 0 {
		c.RenewInterval = min(3*time.Second, (c.LeaseTTL-c.LeaseMargin)/3)
	}
	if c.LeaseWait == 0 {
		c.LeaseWait = DefaultLeaseWait
	}
	if c.TimeTickInterval == 0 {
		c.TimeTickInterval = time.Second
	}
	if c.OpenTimeout == 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = cache.DefaultLocalBytes
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 2*int64(c.MaxBatchBytes) + 64<<10
	}
	if c.MaxAppendMessages == 0 {
		c.MaxAppendMessages = DefaultMaxAppendMessages
	}
	if c.MaxReadMessages == 0 {
		c.MaxReadMessages = DefaultMaxReadMessages
	}
	if c.MaxReadBytes == 0 {
		c.MaxReadBytes = DefaultMaxReadBytes
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.MaxWaiters == 0 {
		c.MaxWaiters = DefaultMaxWaiters
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	c.HeaderTimeout = cmp.Or(c.HeaderTimeout, DefaultHeaderTimeout)
	c.BodyTimeout = cmp.Or(c.BodyTimeout, DefaultBodyTimeout)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	c.MaxConns = cmp.Or(c.MaxConns, DefaultMaxConns)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// leaseRequestTimeout is R for lease GETs and CASes: 1 s, or half the margin
// when the margin is smaller (the coordinator requires R < m).
func (c Config) leaseRequestTimeout() time.Duration {
	return min(leaseRequestTimeout, c.LeaseMargin/2)
}

// Validate reports a configuration the server cannot run with, after
// defaults are applied to zero fields.
func (c Config) Validate() error {
	d := c.withDefaults()
	switch {
	case d.LeaseTTL < 0 || d.LeaseMargin < 0 || d.RenewInterval < 0 || d.LeaseWait < 0 || d.OpenTimeout < 0:
		return errors.New("api: lease durations must not be negative")
	case d.LeaseMargin >= d.LeaseTTL:
		return fmt.Errorf("api: lease margin %v must be below the lease TTL %v", d.LeaseMargin, d.LeaseTTL)
	case d.RenewInterval <= 0 || d.RenewInterval+2*d.leaseRequestTimeout() > d.LeaseTTL-d.LeaseMargin:
		// docs/protocol.md, "Parameters": I + 2·R_cas ≤ TTL − m.
		return fmt.Errorf("api: renew interval %v + 2 × request timeout %v must fit in TTL %v − margin %v",
			d.RenewInterval, d.leaseRequestTimeout(), d.LeaseTTL, d.LeaseMargin)
	case 2*d.LeaseTTL+3*segmentlog.DefaultPutTimeout+d.LeaseMargin > snapshot.DefaultMinAge:
		// docs/protocol.md, "Parameters": 2·TTL + 3R + skew ≤ min_age, skew
		// bounded by the margin: GC must never delete a slot a zombie
		// could still PUT to before its lease deadline passes.
		return fmt.Errorf("api: lease TTL %v too long: 2 × TTL + 3 × PUT timeout %v + margin %v must stay within the WAL's GC min age %v",
			d.LeaseTTL, segmentlog.DefaultPutTimeout, d.LeaseMargin, snapshot.DefaultMinAge)
	case d.MaxBatchBytes < 1 || d.MaxBatchBytes > segmentlog.MaxBatchBytes/2:
		return fmt.Errorf("api: max batch bytes %d out of range 1..%d", d.MaxBatchBytes, segmentlog.MaxBatchBytes/2)
	case d.MaxBodyBytes < 1:
		return fmt.Errorf("api: max body bytes %d must be positive", d.MaxBodyBytes)
	case d.MaxAppendMessages < 1 || d.MaxAppendMessages > segmentlog.MaxMessages:
		return fmt.Errorf("api: max append messages %d out of range 1..%d", d.MaxAppendMessages, segmentlog.MaxMessages)
	case d.MaxReadMessages < 1 || d.MaxReadBytes < 1 || d.MaxWait < 0 || d.MaxWaiters < 1 || d.MaxConns < 1 || d.ScannerStartupDelay < 0:
		return errors.New("api: read limits must be positive (max wait ≥ 0)")
	case d.WriteMode != WriteExclusive && d.WriteMode != WriteTakeover && d.WriteMode != WriteShared:
		return fmt.Errorf("api: write mode %q: want exclusive, takeover or shared", d.WriteMode)
	case d.ShutdownTimeout < 0:
		return errors.New("api: shutdown timeout must not be negative")
	}
	seen := map[string]bool{}
	for _, p := range d.PChannels {
		if err := segmentlog.ValidateName("pchannel", p); err != nil {
			return fmt.Errorf("api: pchannels: %w", err)
		}
		if seen[p] {
			return fmt.Errorf("api: pchannel %q listed twice", p)
		}
		seen[p] = true
	}
	if err := (cache.Config{MaxBytes: d.CacheBytes}).Validate(); err != nil {
		return fmt.Errorf("api: cache bytes: %w", err)
	}
	return nil
}

// leaseConfig is the coordinator's view of the lease timing.
func (c Config) leaseConfig() coordinator.LeaseConfig {
	return coordinator.LeaseConfig{TTL: c.LeaseTTL, Margin: c.LeaseMargin}
}

// coordinatorConfig is the registry's configuration (and the template of a
// Balancer's and a Node's in `cairn serve`).
func (c Config) coordinatorConfig() coordinator.Config {
	return coordinator.Config{Layout: c.Layout, PChannels: c.PChannels, Logger: c.Logger, Now: c.Now}
}

// CoordinatorConfig is the coordinator configuration the server's registry
// uses, defaults applied: a Balancer or Node of the same deployment starts
// from it.
func (c Config) CoordinatorConfig() coordinator.Config { return c.withDefaults().coordinatorConfig() }

// broadcastConfig is the configuration of the server's (and the
// maintenance round's) broadcaster: the registry's layout, clock and
// logger, the coordinator's defaults otherwise.
func (c Config) broadcastConfig() coordinator.BroadcastConfig {
	return coordinator.BroadcastConfig{Layout: c.Layout, Now: c.Now, Logger: c.Logger}
}
