package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/snapshot"
)

// Restore (snapshot role). A restore is a job: the snapshot package's job
// record (its segments checked, its manifest a GC root of its own), then
// the target vchannels created in the registry, bound to the least loaded
// pchannels. It runs in the background of the process that took the
// request; the route answers once the job's record exists. Everything is
// idempotent by job ID: POST again (or GET, if no process runs it) to
// resume a job cut short.

// RestoreRequest is the body of POST /v1/snapshots/{name}/restore.
type RestoreRequest struct {
	// JobID makes the request idempotent; default a fresh UUIDv7.
	JobID string `json:"job_id,omitempty"`
	// Targets maps every vchannel of the snapshot to the new vchannel
	// whose history it becomes. No target may exist yet.
	Targets map[string]string `json:"targets"`
}

// Restore states as the API shows them.
const (
	RestoreRunning    = "running"     // segments being checked, or targets being created
	RestoreDone       = "done"        // every target vchannel exists with the snapshot's history
	RestoreFailed     = "failed"      // creating the targets failed here; POST again to resume
	RestoreRolledBack = "rolled_back" // the job failed and released its references
)

// RestoreOut is a restore job as the API shows it. Progress is Done of
// Total steps: one per segment file checked, one per target vchannel
// created.
type RestoreOut struct {
	ID       string            `json:"id"`
	Snapshot string            `json:"snapshot"`
	Targets  map[string]string `json:"targets"`
	State    string            `json:"state"`
	Done     int               `json:"done"`
	Total    int               `json:"total"`
	TimeTick uint64            `json:"timetick,string"` // the snapshot's
	Error    string            `json:"error,omitempty"`
}

func (s *Server) handleRestore(w http.ResponseWriter, r *http.Request) error {
	name, err := snapshotName(r)
	if err != nil {
		return err
	}
	if err := noQuery(r); err != nil {
		return err
	}
	var req RestoreRequest
	if err := readJSON(r, &req, false); err != nil {
		return err
	}
	if req.JobID == "" {
		req.JobID = uuid.Must(uuid.NewV7()).String()
	}
	if err := validName("restore job", req.JobID); err != nil {
		return err
	}
	if len(req.Targets) == 0 {
		return errorf(http.StatusBadRequest, CodeInvalid, "targets must map every vchannel of the snapshot to a new vchannel")
	}
	seen := map[string]bool{}
	for src, t := range req.Targets {
		if err := validName("vchannel", src); err != nil {
			return err
		}
		if err := validName("vchannel", t); err != nil {
			return err
		}
		if seen[t] {
			return errorf(http.StatusBadRequest, CodeInvalid, "target vchannel %q named twice", t)
		}
		seen[t] = true
	}
	ctx := r.Context()
	job, err := s.snaps.RestoreStatus(ctx, req.JobID)
	switch {
	case err == nil:
		if job.Snapshot != name || !maps.Equal(job.Targets, req.Targets) {
			return errorf(http.StatusConflict, CodeExists, "restore job %s restores %s to %v", req.JobID, job.Snapshot, job.Targets)
		}
	case errors.Is(err, snapshot.ErrNotFound):
		if err := s.checkRestore(ctx, name, req.Targets); err != nil {
			return err
		}
	default:
		return err
	}
	run := s.restores.start(req.JobID, func(ctx context.Context) error {
		return s.runRestore(ctx, req.JobID, name, req.Targets)
	})
	if run == nil {
		return fmt.Errorf("restore: %w", system.ErrShuttingDown)
	}
	// Answer once the job's record exists, or the run ended.
	deadline := time.Now().Add(restoreWait)
	for {
		out, err := s.restoreView(ctx, req.JobID)
		if err == nil {
			status := http.StatusOK
			if out.State == RestoreRunning {
				status = http.StatusAccepted
			}
			writeJSON(w, status, out)
			return nil
		}
		if !errors.Is(err, snapshot.ErrNotFound) {
			return err
		}
		select {
		case <-run.done:
			if run.err != nil {
				return run.err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			writeJSON(w, http.StatusAccepted, RestoreOut{ID: req.JobID, Snapshot: name, Targets: req.Targets, State: RestoreRunning})
			return nil
		}
	}
}

// restoreWait bounds how long the restore route waits for the job's record.
const restoreWait = 5 * time.Second

// checkRestore refuses a new restore of snapshot name to targets: 404 for
// an unknown snapshot, 409 for one not committed or a target that exists,
// 400 for targets that do not map exactly the snapshot's vchannels.
func (s *Server) checkRestore(ctx context.Context, name string, targets map[string]string) error {
	snap, err := s.snaps.Describe(ctx, name)
	if err != nil {
		return err
	}
	if snap.State != snapshot.Committed {
		return errorf(http.StatusConflict, CodeWrongState, "snapshot %s is %s, not committed", name, snap.State)
	}
	if got := slices.Sorted(maps.Keys(targets)); !slices.Equal(got, snap.VChannels) {
		return errorf(http.StatusBadRequest, CodeInvalid, "targets map %v; they must map exactly the snapshot's vchannels %v", got, snap.VChannels)
	}
	for _, t := range targets {
		_, err := s.registry.Describe(ctx, t)
		switch {
		case err == nil:
			return errorf(http.StatusConflict, CodeExists, "target vchannel %q exists", t)
		case !errors.Is(err, coordinator.ErrNoVChannel):
			return err
		}
	}
	return nil
}

// runRestore runs job id to the end: the snapshot package's restore, then
// the target vchannels.
func (s *Server) runRestore(ctx context.Context, id, name string, targets map[string]string) error {
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
		s.vchans.put(v)
		s.known.Store(v.PChannel, struct{}{})
	}
	return nil
}

func (s *Server) handleRestoreStatus(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := validName("restore job", id); err != nil {
		return err
	}
	if err := noQuery(r); err != nil {
		return err
	}
	out, err := s.restoreView(r.Context(), id)
	if errors.Is(err, snapshot.ErrNotFound) {
		return errorf(http.StatusNotFound, CodeUnknownRestore, "no restore job %q", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// restoreView reads job id and its targets. A job that no run of this
// process is working on and that is not finished (its process stopped) is
// resumed here in the background; one whose run failed here is reported
// failed until a POST resumes it.
func (s *Server) restoreView(ctx context.Context, id string) (RestoreOut, error) {
	j, err := s.snaps.RestoreStatus(ctx, id)
	if err != nil {
		return RestoreOut{}, err
	}
	out := RestoreOut{ID: j.ID, Snapshot: j.Snapshot, Targets: j.Targets, Done: j.Done,
		Total: j.Total + len(j.Targets), TimeTick: j.TimeTick, Error: j.Error}
	switch j.State {
	case snapshot.JobRolledBack:
		out.State = RestoreRolledBack
		return out, nil
	case snapshot.JobDone:
		created := 0
		for _, t := range j.Targets {
			v, err := s.registry.Describe(ctx, t)
			switch {
			case err == nil && v.Created != nil:
				created++
			case err != nil && !errors.Is(err, coordinator.ErrNoVChannel):
				return RestoreOut{}, err
			}
		}
		out.Done = j.Total + created
		if created == len(j.Targets) {
			out.State = RestoreDone
			return out, nil
		}
	}
	out.State = RestoreRunning
	run, active := s.restores.get(id)
	switch {
	case active:
	case run != nil && run.err != nil:
		out.State, out.Error = RestoreFailed, run.err.Error()
	default:
		s.restores.start(id, func(ctx context.Context) error { return s.runRestore(ctx, id, j.Snapshot, j.Targets) })
	}
	return out, nil
}

// restoreRuns are the restore jobs running in this process's background,
// and the last outcome of each. Safe for concurrent use.
type restoreRuns struct {
	ctx    context.Context // ends at Server.Close
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
