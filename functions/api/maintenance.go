package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// Maintenance is the periodic work of the scheduled maintenance function
// (functions/maintenance, an EventBridge schedule): the coordinator's
// stuck-assignment check, a flush and a compaction of every pchannel, the
// pending broadcast tasks, and snapshot GC.
type Maintenance interface {
	// RunMaintenance runs one round at now. It returns the tasks' errors
	// joined; a failed task does not stop the others.
	RunMaintenance(ctx context.Context, now time.Time) error
}

// Task is one periodic job of a maintenance round.
type Task interface {
	Name() string
	Run(ctx context.Context, now time.Time) error
}

// Tasks runs its tasks in order, each under the round's context. Safe for
// concurrent use if its tasks are.
type Tasks struct {
	List   []Task
	Logger *slog.Logger
}

// RunMaintenance implements Maintenance.
func (m Tasks) RunMaintenance(ctx context.Context, now time.Time) error {
	log := m.Logger
	if log == nil {
		log = slog.Default()
	}
	var errs []error
	for _, t := range m.List {
		start := time.Now()
		err := t.Run(ctx, now)
		log.Info("maintenance task", "task", t.Name(), "took_ms", time.Since(start).Milliseconds(), "err", err)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// TaskFunc adapts a function to Task.
type TaskFunc struct {
	TaskName string
	Func     func(ctx context.Context, now time.Time) error
}

// Name implements Task.
func (t TaskFunc) Name() string { return t.TaskName }

// Run implements Task.
func (t TaskFunc) Run(ctx context.Context, now time.Time) error { return t.Func(ctx, now) }

// NewMaintenance returns the maintenance round over store, in this order:
//
//   - "stuck-assignment check": one coordinator.Balancer round, which
//     reassigns a pchannel stuck in assigning or whose lease expired (in a
//     Lambda-only deployment no node registers, and the round leaves every
//     pchannel unassigned: writers open on demand in node containers);
//   - "flush": snapshot.Flusher.FlushNow on every pchannel with a lease
//     record (every pchannel ever written), so the schedule is the flush
//     cadence of an idle deployment;
//   - "compact" (unless cfg.NoCompaction): snapshot.Compactor.Compact on
//     the same pchannels: a
//     manifest naming 64 or more segment files has its runs of small files
//     merged (up to 16 merges a round, each into a file of at most
//     MaintenanceCompactBytes), so the checkpoint every flush rewrites and
//     every takeover reads stays bounded; the files it retires stay an
//     hour for readers of older manifests, then "gc" deletes them;
//   - "broadcasts": coordinator.Broadcaster.Resume runs every pending
//     broadcast task (left by a request that stopped waiting, or by a
//     process that died), for at most BroadcastRoundBudget, with a
//     writer pool of the round's own: after the flush, so that a sync-ack
//     task whose copies the flush passed finishes in the same round. The
//     writers it opened are closed at the end of the task, releasing their
//     leases for the node functions. Then Broadcaster.Collect deletes the
//     finished tasks past their retention (1 h). A task still pending when
//     the budget ends is logged, not an error: the next round resumes it;
//   - "retention": snapshot.Retention.Apply trims every pchannel and
//     vchannel that has a retention policy (max age, max bytes) down to it;
//   - "txns": segmentlog.CollectTxns deletes the records of shared-mode
//     transactions no call will finish (open past their keepalive, after
//     marking them aborted by CAS; rolled back; sealed past their seal
//     window): one LIST when there are none;
//   - "gc": snapshot.GC.Collect with its defaults (WAL min_age and orphan
//     age 1 h, the grace of retired segment files too), reclaiming
//     dropped, unpinned vchannels through the registry and retiring the
//     segment files wholly below a trim point (the vchannels' through the
//     registry).
func NewMaintenance(cfg Config, store objstore.Store) (Maintenance, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	leases, err := coordinator.NewLeases(store, cfg.Layout, cfg.leaseConfig(),
		coordinator.WithClock(cfg.Now), coordinator.WithRequestTimeout(cfg.leaseRequestTimeout()))
	if err != nil {
		return nil, fmt.Errorf("api: maintenance: %w", err)
	}
	bal, err := coordinator.NewBalancer(cfg.coordinatorConfig(), store, leases)
	if err != nil {
		return nil, fmt.Errorf("api: maintenance: %w", err)
	}
	reg, err := coordinator.NewRegistry(cfg.coordinatorConfig(), store, leases)
	if err != nil {
		return nil, fmt.Errorf("api: maintenance: %w", err)
	}
	pool, err := newPool(cfg, store, leases, func(string) {})
	if err != nil {
		return nil, fmt.Errorf("api: maintenance: %w", err)
	}
	bc, err := coordinator.NewBroadcaster(cfg.broadcastConfig(), store, reg, pool)
	if err != nil {
		return nil, fmt.Errorf("api: maintenance: %w", err)
	}
	gc, err := snapshot.NewGC(snapshot.GCConfig{Layout: cfg.Layout, Reclaimer: reg, Trims: reg, Now: cfg.Now, Logger: cfg.Logger}, store)
	if err != nil {
		return nil, fmt.Errorf("api: maintenance: %w", err)
	}
	retention := NewRetention(cfg.Layout, store, reg, cfg.Now, cfg.Logger)
	// eachWritten runs op on every pchannel with a lease record (every
	// pchannel ever written), going on past failures.
	eachWritten := func(ctx context.Context, what string, op func(ctx context.Context, pchannel string) error) error {
		ls, err := leases.List(ctx)
		if err != nil {
			return err
		}
		var errs []error
		for _, l := range ls {
			if err := op(ctx, l.PChannel); err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", what, l.PChannel, err))
			}
		}
		return errors.Join(errs...)
	}
	flush := func(ctx context.Context, _ time.Time) error {
		return eachWritten(ctx, "flush", func(ctx context.Context, p string) error {
			f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: p, Layout: cfg.Layout, Now: cfg.Now, Logger: cfg.Logger,
				Positions: reg}, store)
			if err == nil {
				_, err = f.FlushNow(ctx)
			}
			return err
		})
	}
	compact := func(ctx context.Context, _ time.Time) error {
		return eachWritten(ctx, "compact", func(ctx context.Context, p string) error {
			c, err := snapshot.NewCompactor(snapshot.CompactConfig{PChannel: p, Layout: cfg.Layout, TargetBytes: MaintenanceCompactBytes,
				Now: cfg.Now, Logger: cfg.Logger}, store)
			if err != nil {
				return err
			}
			res, err := c.Compact(ctx)
			if err == nil && len(res.Merges) > 0 {
				cfg.Logger.Info("compacted", "pchannel", p, "merges", len(res.Merges), "refs_before", res.RefsBefore, "refs_after", res.RefsAfter)
			}
			return err
		})
	}
	tasks := []Task{
		TaskFunc{TaskName: "stuck-assignment check", Func: func(ctx context.Context, _ time.Time) error {
			changed, err := bal.Check(ctx)
			if len(changed) > 0 {
				cfg.Logger.Info("assignments changed", "count", len(changed))
			}
			return err
		}},
		TaskFunc{TaskName: "flush", Func: flush},
	}
	if !cfg.NoCompaction {
		tasks = append(tasks, TaskFunc{TaskName: "compact", Func: compact})
	}
	tasks = append(tasks,
		TaskFunc{TaskName: "broadcasts", Func: func(ctx context.Context, _ time.Time) error {
			return maintainBroadcasts(ctx, bc, pool, cfg.Logger)
		}},
		TaskFunc{TaskName: "retention", Func: func(ctx context.Context, _ time.Time) error {
			_, err := retention.Apply(ctx)
			return err
		}},
		TaskFunc{TaskName: "txns", Func: func(ctx context.Context, now time.Time) error {
			st, err := segmentlog.CollectTxns(ctx, store, cfg.Layout, now)
			if st.Deleted > 0 {
				cfg.Logger.Info("shared transactions collected", "deleted", st.Deleted, "expired", st.Expired, "left", st.Open)
			}
			return err
		}},
		TaskFunc{TaskName: "gc", Func: func(ctx context.Context, _ time.Time) error { return gc.Collect(ctx) }},
	)
	return Tasks{Logger: cfg.Logger, List: tasks}, nil
}

// MaintenanceCompactBytes bounds the files one merge of the maintenance
// round reads and writes (snapshot.CompactConfig.TargetBytes, whose
// default is 64 MiB): a merge holds its files decoded in memory, and the
// maintenance function runs with 256 MB.
const MaintenanceCompactBytes = 16 << 20

// BroadcastRoundBudget bounds how long a maintenance round (and a round of
// `cairn serve`'s broadcast loop) resumes pending broadcast tasks: a task whose pchannel another process holds
// keeps retrying its copies until its context ends. (A sync-ack task whose
// pchannel is not flushed is looked at once and left for the next round.)
const BroadcastRoundBudget = 30 * time.Second

// maintainBroadcasts is the round's "broadcasts" task: resume the pending
// tasks within BroadcastRoundBudget, close the writers it opened
// (releasing their leases), and collect the finished tasks.
func maintainBroadcasts(ctx context.Context, bc *coordinator.Broadcaster, pool *Pool, log *slog.Logger) error {
	resumed, err := bc.ResumeWithin(ctx, BroadcastRoundBudget)
	rel, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, w := range pool.Writers() {
		if rerr := pool.Release(rel, w.PChannel); rerr != nil {
			log.Warn("broadcasts: writer not closed; its lease will expire", "pchannel", w.PChannel, "err", rerr)
		}
	}
	collected, cerr := bc.Collect(ctx)
	if resumed > 0 || collected > 0 {
		log.Info("broadcasts", "resumed", resumed, "collected", collected)
	}
	return errors.Join(err, cerr)
}
