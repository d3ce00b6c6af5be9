package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/snapshot"
)

// Restore (snapshot role): the routes of system.System.StartRestore and
// RestoreProgress. The route answers once the job's record exists (202
// while it runs); GET /v1/restores/{id} reports state and progress and
// resumes a job no process runs.

func (s *Server) handleRestore(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := validName("snapshot", name); err != nil {
		return err
	}
	req, err := jsonBody[wire.RestoreRequest](r, false)
	if err != nil {
		return err
	}
	p, err := s.sys.StartRestore(r.Context(), req.JobID, name, req.Targets)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if p.State == system.RestoreRunning {
		status = http.StatusAccepted
	}
	writeJSON(w, status, restoreOut(p))
	return nil
}

// restoreProgress is a restore job's progress; 404 unknown_restore if
// there is no such job.
func (s *Server) restoreProgress(ctx context.Context, id string) (system.RestoreProgress, error) {
	p, err := s.sys.RestoreProgress(ctx, id)
	if errors.Is(err, snapshot.ErrNotFound) {
		return p, errorf(http.StatusNotFound, wire.CodeUnknownRestore, "no restore job %q", id)
	}
	return p, err
}

// restoreOut is a restore job's progress as the API shows it.
func restoreOut(p system.RestoreProgress) wire.RestoreOut {
	return wire.RestoreOut{ID: p.Job.ID, Snapshot: p.Job.Snapshot, Targets: p.Job.Targets, State: string(p.State),
		Done: p.Done, Total: p.Total, TimeTick: p.Job.TimeTick, Error: p.Error}
}
