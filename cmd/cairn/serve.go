package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/s3store"
)

type serveOptions struct {
	addr         string
	store        string // "fs" or "s3"
	dataDir      string
	token        string
	createBucket bool
	pchannels    []string // the pchannel set; empty: CAIRN_PCHANNELS, else system.Config's default
	system       systemOptions
}

// Defaults of serve's flags for the parts beside the API.
const (
	defaultFlushInterval = time.Second
	defaultFlushMaxAge   = 10 * time.Minute
	defaultGCInterval    = 5 * time.Minute
	// defaultCompactMinRefs: a held pchannel's manifest is compacted once
	// it names this many segment files (snapshot.CompactConfig.MinRefs).
	defaultCompactMinRefs = 64
	// defaultBroadcastInterval: a pending broadcast costs a LIST of the
	// broadcast records per round.
	defaultBroadcastInterval = 5 * time.Second
)

// withDefaults fills what a serveOptions built without flags (tests) lacks.
func (o serveOptions) withDefaults() serveOptions {
	if o.system.flushInterval == 0 {
		o.system.flushInterval = defaultFlushInterval
	}
	if o.system.flushMaxAge == 0 {
		o.system.flushMaxAge = defaultFlushMaxAge
	}
	if o.system.gcInterval == 0 {
		o.system.gcInterval = defaultGCInterval
	}
	if o.system.broadcastInterval == 0 {
		o.system.broadcastInterval = defaultBroadcastInterval
	}
	return o
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run all of Cairn in one local process",
		Long: `serve runs all of Cairn in one process: the HTTP API of the node,
coordinator and snapshot functions (with /healthz and /metrics), and beside
it the coordinator's balancer, a node that takes the pchannels the balancer
assigns it (the pchannel set, --pchannels), a flusher for every pchannel it
holds (--flush-interval, --flush-max-age), a compactor beside it that merges
the small segment files of a manifest naming --compact-min-refs or more (every
minute; 0 turns compaction off), snapshot GC (--gc-interval, deleting WAL and
orphan segments older than an hour, and segments compaction retired or a
trim point passed an hour after their retirement) after applying the
retention policies (cairn pchannel retention, vchannel retention), and a loop that
resumes pending broadcasts (--broadcast-interval: those whose request
stopped waiting, or whose process stopped; every minute while none is
pending) and deletes finished ones an hour old. A pchannel left without
requests for a minute is parked: its writer closes and releases the lease
(no renewals at rest), and the next request takes it back at once.

It opens the object store — a local directory by default (--store fs), or
S3/MinIO (--store s3, configured by CAIRN_S3_BUCKET, CAIRN_S3_PREFIX,
CAIRN_S3_ENDPOINT and the standard AWS credential variables) — and refuses a
store that does not honour conditional writes (the capability probe). It
prints the address it listens on. Every process sharing a store must list
the same --pchannels.

With --token (or CAIRN_TOKEN) every request but GET or HEAD /healthz needs
"Authorization: Bearer <token>". The other CAIRN_* variables of the Lambda
functions apply too (CAIRN_LEASE_TTL, CAIRN_LEASE_MARGIN, CAIRN_LEASE_WAIT,
CAIRN_CACHE_BYTES, CAIRN_MAX_BODY_BYTES, CAIRN_MAX_WAIT,
CAIRN_SCANNER_STARTUP_DELAY, CAIRN_LOG_LEVEL, CAIRN_PCHANNELS when
--pchannels is not given, and CAIRN_COMPACTION=off, which turns compaction
off like --compact-min-refs 0).

Connections are limited: headers must arrive within 10 s, a request body
within 60 s of its headers (else 408), the answer goes out within 60 s after
the body plus the request's wait for a long poll (reads, broadcasts), a
keep-alive connection idle for 60 s is closed, and at most 1,024
connections are open at once (more wait until one closes).

Ctrl-C (SIGINT) or SIGTERM stops it gracefully: it stops taking requests,
stops the balancer, flushers, GC and the broadcast loop, closes every
writer and releases its lease, and marks its node session stopped, so
another node takes the pchannels over at once.`,
		Example: `  cairn serve
  cairn serve --addr 127.0.0.1:0 --data-dir /tmp/cairn --pchannels p0,p1
  CAIRN_S3_ENDPOINT=http://127.0.0.1:9000 CAIRN_S3_BUCKET=cairn cairn serve --store s3 --create-bucket`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if o.token == "" {
				o.token = os.Getenv("CAIRN_TOKEN")
			}
			return serve(ctx, o, os.Getenv, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:7070", "address to listen on (port 0 picks a free port)")
	f.StringVar(&o.store, "store", "fs", "object store: fs (a local directory) or s3 (S3 or MinIO, from CAIRN_S3_*)")
	f.StringVar(&o.dataDir, "data-dir", ".cairn-data", "directory of the filesystem store (--store fs)")
	f.StringVar(&o.token, "token", "", "bearer token every request but /healthz must carry (default $CAIRN_TOKEN; none: no auth)")
	f.BoolVar(&o.createBucket, "create-bucket", false, "create the bucket if it does not exist (--store s3)")
	f.StringSliceVar(&o.pchannels, "pchannels", nil, "the pchannel set: vchannels bind to these, and this node holds those assigned to it (default $CAIRN_PCHANNELS, else p0,p1,p2,p3)")
	f.DurationVar(&o.system.flushInterval, "flush-interval", defaultFlushInterval, "how often the flusher of a held pchannel looks at its WAL")
	f.DurationVar(&o.system.flushMaxAge, "flush-max-age", defaultFlushMaxAge, "flush a pchannel once its oldest unflushed message is this old (or 8 MiB or 512 batches are waiting)")
	f.DurationVar(&o.system.gcInterval, "gc-interval", defaultGCInterval, "how often snapshot GC runs")
	f.IntVar(&o.system.compactMinRefs, "compact-min-refs", defaultCompactMinRefs, "compact a held pchannel's segment manifest once it names this many files (0: no compaction)")
	f.DurationVar(&o.system.broadcastInterval, "broadcast-interval", defaultBroadcastInterval, "how often pending broadcasts are resumed")
	return cmd
}

// serve runs the API until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, o serveOptions, getenv func(string) string, out io.Writer) error {
	env, err := api.LoadEnv(getenv)
	if err != nil {
		return err
	}
	o = o.withDefaults()
	if o.system.flushInterval <= 0 || o.system.flushMaxAge < 0 || o.system.gcInterval <= 0 || o.system.broadcastInterval <= 0 || o.system.compactMinRefs < 0 {
		return usagef("--flush-interval, --gc-interval and --broadcast-interval must be positive, --flush-max-age and --compact-min-refs not negative")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: env.LogLevel}))
	cfg, apiCfg := env.System, env.API
	cfg.Logger, apiCfg.Token = log, o.token
	if len(o.pchannels) > 0 {
		cfg.PChannels = o.pchannels // else CAIRN_PCHANNELS, else the default set
	}
	if cfg.NoCompaction {
		o.system.compactMinRefs = 0 // CAIRN_COMPACTION=off, as in the maintenance function
	}
	// The node's ID names it in the lease records its writers take, so that
	// the balancer sees it holds them and locate finds its address.
	nodeID := defaultNodeID()
	cfg.Holder = nodeID
	if err := cfg.Validate(); err != nil {
		return err
	}

	s3cfg := s3store.ConfigFromEnv(getenv)
	store, where, err := openStore(ctx, o, s3cfg)
	if err != nil {
		return storeAdvice(o, s3cfg.Bucket, err)
	}
	sys, err := system.New(cfg, store)
	if err != nil {
		return err
	}
	if err := sys.Probe(ctx); err != nil {
		return storeAdvice(o, s3cfg.Bucket, fmt.Errorf("store %s: %w", where, err))
	}
	srv, err := api.New(apiCfg, sys)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.addr, err)
	}
	ln = srv.Listener(ln) // at most MaxConns connections
	hs := srv.HTTPServer(srv.Handler(api.AllRoles), slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	address := "http://" + ln.Addr().String()
	loc, err := newLocal(sys, cfg.Coordinator(), o.system, nodeID, address, log)
	if err != nil {
		ln.Close()
		return err
	}
	auth := "none"
	if o.token != "" {
		auth = "bearer token"
	}
	compaction := "off"
	if o.system.compactMinRefs > 0 {
		compaction = fmt.Sprintf("from %d files", o.system.compactMinRefs)
	}
	fmt.Fprintf(out, "cairn listening on %s (store: %s, auth: %s, node: %s, pchannels: %s, compaction: %s)\n",
		address, where, auth, nodeID, strings.Join(cfg.PChannels, ","), compaction)

	reclaimDeadIncarnations(ctx, sys, nodeID, pidAlive, log)

	sysCtx, stopSystem := context.WithCancel(context.Background())
	defer stopSystem()
	sysDone := make(chan struct{})
	go func() { defer close(sysDone); loc.run(sysCtx) }()

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
		log.Info("shutting down: draining requests, then releasing leases")
	}
	// Stop taking requests (long polls get a few seconds); stop the
	// balancer, flushers, GC and broadcast loop, and let the node release its pchannels and
	// stop its session; then close the writers left, which releases their
	// leases with their tails.
	httpCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := hs.Shutdown(httpCtx); err != nil {
		hs.Close()
	}
	cancel()
	stopSystem()
	select {
	case <-sysDone:
	case <-time.After(15 * time.Second):
		log.Warn("the node did not stop within 15 s; closing the writers anyway")
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Close(closeCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped; leases released")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// openStore opens the store o names and says where it is (never with
// credentials).
func openStore(ctx context.Context, o serveOptions, s3cfg s3store.Config) (objstore.Store, string, error) {
	switch o.store {
	case "fs":
		s, err := objstore.NewFS(o.dataDir)
		if err != nil {
			return nil, "", fmt.Errorf("open store %s: %w", o.dataDir, err)
		}
		return s, "fs " + o.dataDir, nil
	case "s3":
		s3cfg.CreateBucket = o.createBucket
		s, err := s3store.New(ctx, s3cfg)
		if err != nil {
			return nil, "", err
		}
		where := "s3 " + s3cfg.Bucket
		if s3cfg.Prefix != "" {
			where += "/" + s3cfg.Prefix
		}
		if u, err := url.Parse(s3cfg.Endpoint); err == nil && s3cfg.Endpoint != "" {
			u.User = nil
			where += " at " + u.Redacted()
		}
		return s, where, nil
	default:
		return nil, "", usagef("--store %q: want fs or s3", o.store)
	}
}

// storeAdvice puts what to do ahead of an S3 store's setup failure, whose
// own words (the SDK's) are long and name the last thing it tried: with no
// credentials anywhere that is the EC2 instance metadata, and a missing
// bucket fails the probe. The advice is what the configuration lacks.
func storeAdvice(o serveOptions, bucket string, err error) error {
	if o.store != "s3" {
		return err
	}
	var advice []string
	credentials := false
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		credentials = credentials || os.Getenv(k) != ""
	}
	if !credentials {
		advice = append(advice, "no AWS credentials are set: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE); without them the AWS SDK falls back on ~/.aws and then on EC2 instance metadata, which exists only on EC2")
	}
	if !o.createBucket {
		advice = append(advice, fmt.Sprintf("if bucket %q does not exist, create it or pass --create-bucket", bucket))
	}
	if len(advice) == 0 {
		return err
	}
	return fmt.Errorf("the S3 store cannot be used; %s (cause: %w)", strings.Join(advice, "; "), err)
}
