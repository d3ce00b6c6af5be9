package wire

import "time"

// BroadcastRequest is the body of POST /v1/broadcasts.
type BroadcastRequest struct {
	// ID names the broadcast: sending it again returns the same task, and
	// each vchannel gets one copy however often it is sent.
	ID         string            `json:"id"`
	VChannels  []string          `json:"vchannels"`
	Payload    []byte            `json:"payload,omitempty"` // base64 in JSON
	Properties map[string]string `json:"properties,omitempty"`
	// Ack is "fast" (default: a copy counts once it is in the WAL) or
	// "sync" (once its pchannel's flush checkpoint has passed it).
	Ack string `json:"ack,omitempty"`
	// Resources are more resource locks to hold while appending (names).
	Resources []string `json:"resources,omitempty"`
	// Wait bounds how long the route runs the task before it answers with
	// the task pending: a Go duration, default DefaultBroadcastWait,
	// capped at Config.MaxWait; "0s" only persists the task.
	Wait string `json:"wait,omitempty"`
}

// BroadcastOut is a broadcast task as the API shows it (without its
// payload and properties, which only the copies carry).
type BroadcastOut struct {
	ID         string               `json:"id"`
	State      string               `json:"state"` // pending, done or failed
	Ack        string               `json:"ack"`   // fast or sync
	Targets    []BroadcastTargetOut `json:"targets"`
	Error      string               `json:"error,omitempty"` // why it failed
	CreatedAt  time.Time            `json:"created_at"`
	FinishedAt *time.Time           `json:"finished_at,omitempty"`
	Version    uint64               `json:"version"`
}

// BroadcastTargetOut is one vchannel of a broadcast and how far its copy
// got.
type BroadcastTargetOut struct {
	VChannel string `json:"vchannel"`
	PChannel string `json:"pchannel"`
	// Appended is where the copy landed; null until it is acknowledged.
	Appended *MarkOut `json:"appended"`
	// Synced: the pchannel's flush checkpoint has passed the copy.
	Synced bool `json:"synced"`
	// Skipped says why no copy was appended ("dropped": the vchannel was
	// dropped before its copy was sent).
	Skipped string `json:"skipped,omitempty"`
}

// BroadcastsResponse answers GET /v1/broadcasts.
type BroadcastsResponse struct {
	Broadcasts []BroadcastOut `json:"broadcasts"`
}
