package wire

// RestoreRequest is the body of POST /v1/snapshots/{name}/restore.
type RestoreRequest struct {
	// JobID makes the request idempotent; default a fresh UUIDv7.
	JobID string `json:"job_id,omitempty"`
	// Targets maps every vchannel of the snapshot to the new vchannel
	// whose history it becomes. No target may exist yet.
	Targets map[string]string `json:"targets"`
}

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
