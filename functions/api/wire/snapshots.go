package wire

import "time"

// FlushResponse answers POST /v1/pchannels/{p}/flush.
type FlushResponse struct {
	PChannel string `json:"pchannel"`
	// Rounds committed by this call (0 if the checkpoint was at the tail
	// already, or another flusher got there first).
	Rounds   int   `json:"rounds"`
	Messages int64 `json:"messages"` // written to segments by this call
	Segments int   `json:"segments"` // files written by this call
	// Checkpoint: the WAL offset below which the pchannel is in segments,
	// after the call.
	Checkpoint uint64 `json:"checkpoint"`
}

// SnapshotCreateRequest is the body of POST /v1/snapshots.
type SnapshotCreateRequest struct {
	Name      string   `json:"name"`
	VChannels []string `json:"vchannels"`
}

// SnapshotOut is a snapshot record as the API shows it (the manifest's
// files are counted, not listed).
type SnapshotOut struct {
	Name      string   `json:"name"`
	State     string   `json:"state"` // pending, committed or deleting
	VChannels []string `json:"vchannels"`
	Cuts      []CutOut `json:"cuts"`
	// TimeTick: every message of its vchannels with a timetick ≤ it is in
	// the snapshot.
	TimeTick  uint64    `json:"timetick,string"`
	Segments  int       `json:"segments"`
	Messages  int64     `json:"messages"`
	Bytes     int64     `json:"bytes"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   uint64    `json:"version"`
}

// CutOut is where a snapshot cut one pchannel.
type CutOut struct {
	PChannel   string `json:"pchannel"`
	Checkpoint uint64 `json:"checkpoint"`
	TimeTick   uint64 `json:"timetick,string"`
}

// SnapshotsResponse answers GET /v1/snapshots.
type SnapshotsResponse struct {
	Snapshots []SnapshotOut `json:"snapshots"`
}
