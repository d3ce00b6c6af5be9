package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/functions/api/wire"
)

// Flush, snapshots and restore jobs.

// FlushResult is what a flush did.
type FlushResult = wire.FlushResponse

// Snapshot is a snapshot's record: an immutable manifest over the
// segments of a set of vchannels.
// Its State is "pending", "committed" or "deleting"; every message of its
// vchannels with a timetick at most TimeTick is in it.
type Snapshot = wire.SnapshotOut

// Cut is where a snapshot cut one pchannel.
type Cut = wire.CutOut

// Restore job states.
const (
	RestoreRunning    = "running"     // segments being checked, or targets being created
	RestoreDone       = "done"        // every target vchannel exists with its history
	RestoreFailed     = "failed"      // creating the targets failed; Restore again to resume
	RestoreRolledBack = "rolled_back" // the job failed and released its references
)

// RestoreJob is a restore job: its state and progress (Done of Total
// steps: one per segment file checked, one per target vchannel created).
type RestoreJob struct {
	ID       string            `json:"id"`
	Snapshot string            `json:"snapshot"`
	Targets  map[string]string `json:"targets"`
	State    string            `json:"state"`
	Done     int               `json:"done"`
	Total    int               `json:"total"`
	TimeTick uint64            `json:"timetick,string"`
	Error    string            `json:"error,omitempty"`
}

// Finished reports whether the job is no longer running.
func (j RestoreJob) Finished() bool { return j.State != RestoreRunning }

// Flush flushes pchannel's WAL to segments now, whatever the thresholds.
// ErrNotFound for a pchannel never written.
func (c *Client) Flush(ctx context.Context, pchannel string) (FlushResult, error) {
	path, err := pchannelPath(pchannel, "/flush")
	if err != nil {
		return FlushResult{}, err
	}
	var r FlushResult
	err = c.do(ctx, request{method: "POST", path: path, body: []byte("{}"), idempotent: true}, &r)
	return r, err
}

// CreateSnapshot takes snapshot name of vchannels: every message acked on
// them before the call is in it. It returns once the snapshot is committed.
// Calling it again with the same name and vchannels returns the snapshot,
// so it is retried freely; the name taken with other vchannels fails with
// ErrConflict, an unknown vchannel with ErrNotFound.
func (c *Client) CreateSnapshot(ctx context.Context, name string, vchannels []string) (Snapshot, error) {
	if name == "" || len(vchannels) == 0 {
		return Snapshot{}, fmt.Errorf("client: create snapshot: %w: a name and at least one vchannel", ErrInvalid)
	}
	body, err := json.Marshal(wire.SnapshotCreateRequest{Name: name, VChannels: vchannels})
	if err != nil {
		return Snapshot{}, err
	}
	var s Snapshot
	err = c.do(ctx, request{method: "POST", path: "/v1/snapshots", body: body, idempotent: true}, &s)
	return s, err
}

// Snapshots lists the snapshots not dropped, in name order; with a
// vchannel, those that include it.
func (c *Client) Snapshots(ctx context.Context, vchannel string) ([]Snapshot, error) {
	q := url.Values{}
	if vchannel != "" {
		q.Set("vchannel", vchannel)
	}
	var resp struct {
		Snapshots []Snapshot `json:"snapshots"`
	}
	if err := c.do(ctx, request{method: "GET", path: "/v1/snapshots", query: q, idempotent: true}, &resp); err != nil {
		return nil, err
	}
	return resp.Snapshots, nil
}

// Snapshot describes snapshot name; ErrNotFound if there is none.
func (c *Client) Snapshot(ctx context.Context, name string) (Snapshot, error) {
	path, err := namePath("snapshot", "/v1/snapshots", name, "")
	if err != nil {
		return Snapshot{}, err
	}
	var s Snapshot
	err = c.do(ctx, request{method: "GET", path: path, idempotent: true}, &s)
	return s, err
}

// DropSnapshot drops snapshot name; ErrNotFound if there is none (also
// when an earlier try of this call dropped it). Files a restored vchannel
// uses stay.
func (c *Client) DropSnapshot(ctx context.Context, name string) error {
	path, err := namePath("snapshot", "/v1/snapshots", name, "")
	if err != nil {
		return err
	}
	return c.do(ctx, request{method: "DELETE", path: path, idempotent: true}, nil)
}

// RestoreOptions are the options of Restore.
type RestoreOptions struct {
	// JobID names the job; a call with the JobID of an earlier one resumes
	// or returns it. Default: a fresh UUIDv7, chosen here so that retries
	// of this call are the same job.
	JobID string
	// Targets maps every vchannel of the snapshot to the new vchannel that
	// gets its history. No target may exist.
	Targets map[string]string
}

// Restore starts restore job opts.JobID of snapshot name (or resumes it)
// and returns it, usually still running: follow it with RestoreStatus or
// WaitRestore. ErrNotFound for an unknown snapshot; ErrConflict for a
// target that exists, a snapshot not committed, or a JobID of another
// restore; ErrInvalid for targets that do not map exactly the snapshot's
// vchannels.
func (c *Client) Restore(ctx context.Context, name string, opts RestoreOptions) (RestoreJob, error) {
	path, err := namePath("snapshot", "/v1/snapshots", name, "/restore")
	if err != nil {
		return RestoreJob{}, err
	}
	if opts.JobID == "" {
		opts.JobID = uuid.Must(uuid.NewV7()).String()
	}
	body, err := json.Marshal(wire.RestoreRequest{JobID: opts.JobID, Targets: opts.Targets})
	if err != nil {
		return RestoreJob{}, err
	}
	var j RestoreJob
	err = c.do(ctx, request{method: "POST", path: path, body: body, idempotent: true}, &j)
	return j, err
}

// RestoreStatus returns restore job id; ErrNotFound if there is none.
func (c *Client) RestoreStatus(ctx context.Context, id string) (RestoreJob, error) {
	path, err := namePath("restore job", "/v1/restores", id, "")
	if err != nil {
		return RestoreJob{}, err
	}
	var j RestoreJob
	err = c.do(ctx, request{method: "GET", path: path, idempotent: true}, &j)
	return j, err
}

// WaitRestore polls restore job id every poll (default 200 ms) until it
// finishes, calling progress (if not nil) with every state read, and
// returns the finished job: its State says how it ended.
func (c *Client) WaitRestore(ctx context.Context, id string, poll time.Duration, progress func(RestoreJob)) (RestoreJob, error) {
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	for {
		j, err := c.RestoreStatus(ctx, id)
		if err != nil {
			return j, err
		}
		if progress != nil {
			progress(j)
		}
		if j.Finished() {
			return j, nil
		}
		if err := c.sleep(ctx, poll); err != nil {
			return j, err
		}
	}
}
