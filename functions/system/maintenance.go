package system

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// task is one job of a maintenance round.
type task struct {
	name string
	run  func(ctx context.Context) error
}

// RunMaintenance runs one round of the periodic work of the scheduled
// maintenance function (functions/maintenance, an EventBridge schedule).
// It returns the tasks' errors joined; a failed task does not stop the
// others. The tasks, in this order:
//
//   - "stuck-assignment check": one coordinator.Balancer round, which
//     reassigns a pchannel stuck in assigning or whose lease expired (in a
//     Lambda-only deployment no node registers, and the round leaves every
//     pchannel unassigned: writers open on demand in node containers);
//   - "flush": snapshot.Flusher.FlushNow on every pchannel with a lease
//     record (every pchannel ever written), so the schedule is the flush
//     cadence of an idle deployment;
//   - "compact" (unless Config.NoCompaction): snapshot.Compactor.Compact on
//     the same pchannels: a
//     manifest naming 64 or more segment files has its runs of small files
//     merged (up to 16 merges a round, each into a file of at most
//     MaintenanceCompactBytes), so the checkpoint every flush rewrites and
//     every takeover reads stays bounded; the files it retires stay an
//     hour for readers of older manifests, then "gc" deletes them;
//   - "broadcasts": coordinator.Broadcaster.Resume runs every pending
//     broadcast task (left by a request that stopped waiting, or by a
//     process that died), for at most BroadcastRoundBudget, through the
//     system's pool (in the maintenance function, the round's own): after the flush, so that a sync-ack
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
func (s *System) RunMaintenance(ctx context.Context) error {
	cfg := s.cfg
	bal, err := coordinator.NewBalancer(cfg.Coordinator(), s.StoreFor("balancer"), s.leases)
	if err != nil {
		return fmt.Errorf("system: maintenance: %w", err)
	}
	gc, err := snapshot.NewGC(snapshot.GCConfig{Layout: cfg.Layout, Reclaimer: s.registry, Trims: s.registry, Now: cfg.Now, Logger: cfg.Logger}, s.StoreFor("gc"))
	if err != nil {
		return fmt.Errorf("system: maintenance: %w", err)
	}
	retention := s.Retention()
	leases, reg, flushStore, compactStore, txnStore := s.leases, s.registry, s.StoreFor("flusher"), s.StoreFor("compactor"), s.StoreFor("txns")
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
	flush := func(ctx context.Context) error {
		return eachWritten(ctx, "flush", func(ctx context.Context, p string) error {
			f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: p, Layout: cfg.Layout, Now: cfg.Now, Logger: cfg.Logger,
				Positions: reg}, flushStore)
			if err == nil {
				_, err = f.FlushNow(ctx)
			}
			return err
		})
	}
	compact := func(ctx context.Context) error {
		return eachWritten(ctx, "compact", func(ctx context.Context, p string) error {
			c, err := snapshot.NewCompactor(snapshot.CompactConfig{PChannel: p, Layout: cfg.Layout, TargetBytes: MaintenanceCompactBytes,
				Now: cfg.Now, Logger: cfg.Logger}, compactStore)
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
	tasks := []task{
		{"stuck-assignment check", func(ctx context.Context) error {
			changed, err := bal.Check(ctx)
			if len(changed) > 0 {
				cfg.Logger.Info("assignments changed", "count", len(changed))
			}
			return err
		}},
		{"flush", flush},
	}
	if !cfg.NoCompaction {
		tasks = append(tasks, task{"compact", compact})
	}
	tasks = append(tasks,
		task{"broadcasts", func(ctx context.Context) error { return s.maintainBroadcasts(ctx) }},
		task{"retention", func(ctx context.Context) error {
			_, err := retention.Apply(ctx)
			return err
		}},
		task{"txns", func(ctx context.Context) error {
			st, err := segmentlog.CollectTxns(ctx, txnStore, cfg.Layout, cfg.Now())
			if st.Deleted > 0 {
				cfg.Logger.Info("shared transactions collected", "deleted", st.Deleted, "expired", st.Expired, "left", st.Open)
			}
			return err
		}},
		task{"gc", gc.Collect},
	)
	var errs []error
	for _, t := range tasks {
		start := time.Now()
		err := t.run(ctx)
		cfg.Logger.Info("maintenance task", "task", t.name, "took_ms", time.Since(start).Milliseconds(), "err", err)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
		}
	}
	return errors.Join(errs...)
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
func (s *System) maintainBroadcasts(ctx context.Context) error {
	bc, pool, log := s.broadcasts, s.pool, s.cfg.Logger
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
