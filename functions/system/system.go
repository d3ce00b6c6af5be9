package system

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// System is everything a Cairn process runs over one object store, built
// once per process (a Lambda container keeps it across invocations): the
// lease service, the writer pool with its write-ahead cache, the vchannel
// registry, the broadcaster (whose copies go through the pool), snapshots,
// the segment reader, and the metrics of them all. The HTTP API
// (functions/api), `cairn serve` and every Lambda main build it with New,
// and nothing else assembles these parts. Safe for concurrent use.
type System struct {
	cfg        Config
	base       objstore.Store // not counted: StoreFor wraps it per component
	metrics    *metrics
	leases     *coordinator.Leases
	registry   *coordinator.Registry
	broadcasts *coordinator.Broadcaster
	snaps      *snapshot.Snapshots
	segs       *snapshot.SegmentReader
	reader     objstore.Store // counted as "reader": segment and checkpoint reads of the data path
	api        objstore.Store // counted as "api": tail, status, flush and reads (pchannels.go)
	pool       *Pool
	restores   *restoreRuns
	pause      *segmentlog.PauseGate // Config.ScannerStartupDelay
	vchans     vchannelCache
	written    sync.Map // pchannel → struct{}: has a lease record (records are never deleted)

	// checkpoints keeps the checkpoint records LiveStart read, over reader;
	// apiCheckpoints those of the routes' reads, status, trims and flushes,
	// over api: an unchanged record is not downloaded again.
	checkpoints    *segmentlog.CheckpointCache
	apiCheckpoints *segmentlog.CheckpointCache

	probeMu  sync.Mutex
	probedOK bool
}

// New builds the system over store: cfg's defaults applied, then checked.
// It sends no request.
func New(cfg Config, store objstore.Store) (*System, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &System{cfg: cfg, base: store, pause: segmentlog.NewPauseGate(cfg.ScannerStartupDelay)}
	s.metrics = newMetrics(func() *Pool { return s.pool })
	registerPause(s.metrics.reg, s.pause)
	leases, err := coordinator.NewLeases(s.StoreFor("lease"), cfg.Layout, cfg.Lease(),
		coordinator.WithClock(cfg.Now), coordinator.WithRequestTimeout(cfg.LeaseRequestTimeout()))
	if err != nil {
		return nil, fmt.Errorf("system: %w", err)
	}
	s.leases = leases
	if s.pool, err = newPool(cfg, s.StoreFor("writer"), leases, s.metrics.countOpen); err != nil {
		return nil, err
	}
	if s.registry, err = coordinator.NewRegistry(cfg.Coordinator(), s.StoreFor("registry"), leases); err != nil {
		return nil, fmt.Errorf("system: %w", err)
	}
	if s.broadcasts, err = coordinator.NewBroadcaster(cfg.broadcast(), s.StoreFor("broadcast"), s.registry, s.pool); err != nil {
		return nil, fmt.Errorf("system: %w", err)
	}
	if s.snaps, err = snapshot.NewSnapshots(snapshot.SnapshotsConfig{Layout: cfg.Layout, Now: cfg.Now, Logger: cfg.Logger},
		s.StoreFor("snapshot"), s.registry); err != nil {
		return nil, fmt.Errorf("system: %w", err)
	}
	s.reader = s.StoreFor("reader")
	s.api = s.StoreFor("api")
	s.segs = snapshot.NewSegmentReader(s.reader, 0)
	s.checkpoints = segmentlog.NewCheckpointCache(s.reader, cfg.Layout)
	s.apiCheckpoints = segmentlog.NewCheckpointCache(s.api, cfg.Layout)
	s.restores = newRestoreRuns()
	s.vchans = vchannelCache{ttl: vchannelCacheTTL, now: cfg.Now, entries: map[string]vchannelEntry{}}
	return s, nil
}

// Config is the system's configuration, defaults applied.
func (s *System) Config() Config { return s.cfg }

// Logger is the system's logger.
func (s *System) Logger() *slog.Logger { return s.cfg.Logger }

// StoreFor is the system's object store, counted in its metrics
// (cairn_store_requests_total and the like) as component: the API,
// balancer, node, flushers, compactors and GC each take their own.
func (s *System) StoreFor(component string) objstore.Store {
	return s.metrics.storeFor(s.base, component)
}

// Metrics is the registry of the system's Prometheus collectors (no
// package globals); the HTTP API registers its own on it.
func (s *System) Metrics() *prometheus.Registry { return s.metrics.reg }

// Leases is the lease service.
func (s *System) Leases() *coordinator.Leases { return s.leases }

// Registry is the vchannel registry.
func (s *System) Registry() *coordinator.Registry { return s.registry }

// Broadcaster runs broadcast tasks; it appends through the pool.
func (s *System) Broadcaster() *coordinator.Broadcaster { return s.broadcasts }

// Snapshots is the snapshot service.
func (s *System) Snapshots() *snapshot.Snapshots { return s.snaps }

// Segments reads below the flush checkpoint, and restored histories.
func (s *System) Segments() *snapshot.SegmentReader { return s.segs }

// Pool is the writer pool.
func (s *System) Pool() *Pool { return s.pool }

// Retention is the retention of the deployment: pchannel policies trim by
// the checkpoint, vchannel policies through the registry. The maintenance
// round and `cairn serve` run its Apply before GC.
func (s *System) Retention() *snapshot.Retention {
	reg := s.registry
	return snapshot.NewRetention(snapshot.RetentionConfig{
		Layout: s.cfg.Layout, Now: s.cfg.Now, Logger: s.cfg.Logger,
		TrimVChannel: func(ctx context.Context, v string, before segmentlog.MessageID) error {
			_, err := reg.Trim(ctx, v, before)
			return err
		},
		VChannelTrim: func(ctx context.Context, v string) (segmentlog.MessageID, error) {
			rec, err := reg.Describe(ctx, v)
			return rec.Trim, err
		},
	}, s.StoreFor("retention"))
}

// ProbeTimeout bounds one Probe.
const ProbeTimeout = 30 * time.Second

// Probe checks once per process that the store honours the conditional
// writes the protocol relies on (objstore.Probe, under the scratch prefix
// "probe"): `cairn serve` and every Lambda main run it before they take
// requests. A success is remembered (a warm container does not probe
// again); a failure is not, so the next call probes again.
func (s *System) Probe(ctx context.Context) error {
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if s.probedOK {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	if err := objstore.Probe(ctx, s.StoreFor("probe"), "probe"); err != nil {
		return err
	}
	s.probedOK = true
	return nil
}

// Close stops the restore jobs running in the background (a later
// StartRestore or RestoreProgress resumes them: they are idempotent), then
// closes every writer, releasing its lease (see Pool.Close).
func (s *System) Close(ctx context.Context) error {
	s.restores.stop(ctx)
	return s.pool.Close(ctx)
}
