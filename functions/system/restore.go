package system

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// Restore orchestration. A restore is a job: the snapshot package's job
// record (its segments checked, its manifest a GC root of its own), then
// the target vchannels created in the registry, bound to the least loaded
// pchannels, each pchannel's timeticks raised above the snapshot's. It
// runs in the background of the process that started it; everything is
// idempotent by job ID, so starting it again (or asking for its progress,
// if no process runs it) resumes a job cut short.

// RestoreState is a restore job's state as the system reports it.
type RestoreState string

const (
	RestoreRunning    RestoreState = "running"     // segments being checked, or targets being created
	RestoreDone       RestoreState = "done"        // every target vchannel exists with the snapshot's history
	RestoreFailed     RestoreState = "failed"      // creating the targets failed here; start it again to resume
	RestoreRolledBack RestoreState = "rolled_back" // the job failed and released its references
)

// RestoreProgress is a restore job and how far it is: Done of Total steps,
// one per segment file checked and one per target vchannel created.
type RestoreProgress struct {
	Job   snapshot.RestoreJob
	State RestoreState
	Done  int
	Total int
	Error string // why the job failed
}

// restoreWait bounds how long StartRestore waits for the job's record.
const restoreWait = 5 * time.Second

// StartRestore starts (or resumes) restore job id ("" for a new UUIDv7)
// of snapshot name to targets (source vchannel → new vchannel) in the
// background and returns its progress once its record exists, or its
// first progress if that takes longer than a few seconds. Invalid names
// fail wrapping segmentlog.ErrInvalidName and no targets with ErrInvalid,
// before any request. A new job is checked first: an unknown
// snapshot fails with snapshot.ErrNotFound, one not committed with
// snapshot.ErrState, a target that exists with snapshot.ErrExists, targets
// that do not map exactly its vchannels with ErrInvalid; an
// existing job id with another snapshot or targets fails with
// snapshot.ErrExists.
func (s *System) StartRestore(ctx context.Context, id, name string, targets map[string]string) (RestoreProgress, error) {
	if id == "" {
		id = uuid.Must(uuid.NewV7()).String()
	}
	if err := checkRestoreNames(id, targets); err != nil {
		return RestoreProgress{}, err
	}
	job, err := s.snaps.RestoreStatus(ctx, id)
	switch {
	case err == nil:
		if job.Snapshot != name || !maps.Equal(job.Targets, targets) {
			return RestoreProgress{}, fmt.Errorf("restore job %s restores %s to %v: %w", id, job.Snapshot, job.Targets, snapshot.ErrExists)
		}
	case errors.Is(err, snapshot.ErrNotFound):
		if err := s.checkRestore(ctx, name, targets); err != nil {
			return RestoreProgress{}, err
		}
	default:
		return RestoreProgress{}, err
	}
	run := s.restores.start(id, func(ctx context.Context) error { return s.runRestore(ctx, id, name, targets) })
	if run == nil {
		return RestoreProgress{}, fmt.Errorf("restore: %w", ErrShuttingDown)
	}
	deadline := time.Now().Add(restoreWait)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		p, err := s.RestoreProgress(ctx, id)
		if !errors.Is(err, snapshot.ErrNotFound) {
			return p, err
		}
		select {
		case <-run.done:
			if run.err != nil {
				return RestoreProgress{}, run.err
			}
		case <-ctx.Done():
			return RestoreProgress{}, ctx.Err()
		case <-t.C:
		}
		if time.Now().After(deadline) {
			return RestoreProgress{Job: snapshot.RestoreJob{ID: id, Snapshot: name, Targets: targets}, State: RestoreRunning}, nil
		}
	}
}

// checkRestoreNames refuses a restore request whose job ID or vchannel
// names are not valid, or that names no targets.
func checkRestoreNames(id string, targets map[string]string) error {
	if err := segmentlog.ValidateName("restore job", id); err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("%w: targets must map every vchannel of the snapshot to a new vchannel", ErrInvalid)
	}
	for src, t := range targets {
		if err := segmentlog.ValidateName("vchannel", src); err != nil {
			return err
		}
		if err := segmentlog.ValidateName("vchannel", t); err != nil {
			return err
		}
	}
	return nil
}

// checkRestore refuses a new restore of snapshot name to targets.
func (s *System) checkRestore(ctx context.Context, name string, targets map[string]string) error {
	snap, err := s.snaps.Describe(ctx, name)
	if err != nil {
		return err
	}
	if snap.State != snapshot.Committed {
		return fmt.Errorf("snapshot %s is %s, not committed: %w", name, snap.State, snapshot.ErrState)
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if seen[t] {
			return fmt.Errorf("%w: target vchannel %q named twice", ErrInvalid, t)
		}
		seen[t] = true
	}
	if got := slices.Sorted(maps.Keys(targets)); !slices.Equal(got, snap.VChannels) {
		return fmt.Errorf("%w: targets map %v; they must map exactly the snapshot's vchannels %v", ErrInvalid, got, snap.VChannels)
	}
	for _, t := range targets {
		_, err := s.registry.Describe(ctx, t)
		switch {
		case err == nil:
			return fmt.Errorf("target vchannel %q exists: %w", t, snapshot.ErrExists)
		case !errors.Is(err, coordinator.ErrNoVChannel):
			return err
		}
	}
	return nil
}

// runRestore runs job id to the end: the snapshot package's restore, then
// the target vchannels.
func (s *System) runRestore(ctx context.Context, id, name string, targets map[string]string) error {
	job, err := s.snaps.Restore(ctx, id, name, targets)
	if err != nil {
		return err
	}
	if job.State != snapshot.JobDone {
		return fmt.Errorf("restore job %s: %w: it is %s", id, snapshot.ErrState, job.State)
	}
	for _, src := range slices.Sorted(maps.Keys(targets)) {
		v, err := s.registry.Create(ctx, s.pool, targets[src], "")
		if err != nil {
			return fmt.Errorf("restore job %s: create target vchannel %s: %w", id, targets[src], err)
		}
		// docs/protocol.md "Snapshots" rule 3: the target pchannel's timeticks
		// go above the snapshot's before the restored vchannel is handed
		// out (its appends can only come after this returns).
		if err := s.pool.RaiseTickFloor(ctx, v.PChannel, job.TimeTick); err != nil {
			return fmt.Errorf("restore job %s: raise the timetick floor of %s: %w", id, v.PChannel, err)
		}
		s.NoteVChannel(v)
	}
	return nil
}

// RestoreProgress reads job id and its targets. A job that no run of this
// process is working on and that is not finished (its process stopped) is
// resumed here in the background; one whose run failed here is reported
// failed until StartRestore resumes it. An unknown job fails with
// snapshot.ErrNotFound.
func (s *System) RestoreProgress(ctx context.Context, id string) (RestoreProgress, error) {
	j, err := s.snaps.RestoreStatus(ctx, id)
	if err != nil {
		return RestoreProgress{}, err
	}
	p := RestoreProgress{Job: j, Done: j.Done, Total: j.Total + len(j.Targets), Error: j.Error}
	switch j.State {
	case snapshot.JobRolledBack:
		p.State = RestoreRolledBack
		return p, nil
	case snapshot.JobDone:
		created := 0
		for _, t := range j.Targets {
			v, err := s.registry.Describe(ctx, t)
			switch {
			case err == nil && v.Created != nil:
				created++
			case err != nil && !errors.Is(err, coordinator.ErrNoVChannel):
				return RestoreProgress{}, err
			}
		}
		p.Done = j.Total + created
		if created == len(j.Targets) {
			p.State = RestoreDone
			return p, nil
		}
	}
	p.State = RestoreRunning
	run, active := s.restores.get(id)
	switch {
	case active:
	case run != nil && run.err != nil:
		p.State, p.Error = RestoreFailed, run.err.Error()
	default:
		s.restores.start(id, func(ctx context.Context) error { return s.runRestore(ctx, id, j.Snapshot, j.Targets) })
	}
	return p, nil
}

// restoreRuns are the restore jobs running in this process's background,
// and the last outcome of each. Safe for concurrent use.
type restoreRuns struct {
	ctx    context.Context // ends at System.Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	runs map[string]*restoreRun
}

type restoreRun struct {
	done chan struct{}
	err  error // set before done is closed
}

func newRestoreRuns() *restoreRuns {
	ctx, cancel := context.WithCancel(context.Background())
	return &restoreRuns{ctx: ctx, cancel: cancel, runs: map[string]*restoreRun{}}
}

// start runs f for job id in the background unless a run of it is active
// (then it returns that one); nil once stopped.
func (rr *restoreRuns) start(id string, f func(context.Context) error) *restoreRun {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.ctx.Err() != nil {
		return nil
	}
	if run := rr.runs[id]; run != nil {
		select {
		case <-run.done:
		default:
			return run
		}
	}
	run := &restoreRun{done: make(chan struct{})}
	rr.runs[id] = run
	rr.wg.Add(1)
	go func() {
		defer rr.wg.Done()
		run.err = f(rr.ctx)
		close(run.done)
	}()
	return run
}

// get returns the last run of id in this process and whether it is still
// running.
func (rr *restoreRuns) get(id string) (*restoreRun, bool) {
	rr.mu.Lock()
	run := rr.runs[id]
	rr.mu.Unlock()
	if run == nil {
		return nil, false
	}
	select {
	case <-run.done:
		return run, false
	default:
		return run, true
	}
}

// stop cancels the running jobs and waits for them, at most until ctx
// ends.
func (rr *restoreRuns) stop(ctx context.Context) {
	rr.mu.Lock()
	rr.cancel()
	rr.mu.Unlock()
	done := make(chan struct{})
	go func() { rr.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
