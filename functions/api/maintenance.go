package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// Maintenance is the periodic work of the scheduled maintenance function
// (functions/maintenance, an EventBridge schedule): the coordinator's
// stuck-assignment check, and the snapshot package's flush and GC. Neither
// is built yet; NewMaintenance returns placeholders that only log, to be
// replaced by the real tasks when coordinator assignments and snapshot land.
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

// pendingTask stands in for a task whose package is not built yet: it does
// nothing and says so in the log.
type pendingTask struct {
	name, waitsFor string
	log            *slog.Logger
}

func (t pendingTask) Name() string { return t.name }

func (t pendingTask) Run(context.Context, time.Time) error {
	t.log.Info("maintenance task not built yet; nothing done", "task", t.name, "waits_for", t.waitsFor)
	return nil
}

// NewMaintenance returns the maintenance round over store: today two
// placeholders, the stuck-assignment check (coordinator assignments, to
// reassign a pchannel stuck in "assigning" or whose lease expired) and
// flush/GC (the snapshot package).
func NewMaintenance(cfg Config, store objstore.Store) Maintenance {
	cfg = cfg.withDefaults()
	_ = store // the real tasks will run over it
	return Tasks{Logger: cfg.Logger, List: []Task{
		pendingTask{name: "stuck-assignment check", waitsFor: "coordinator assignments", log: cfg.Logger},
		pendingTask{name: "flush and GC", waitsFor: "snapshot package", log: cfg.Logger},
	}}
}
