package wire

import "time"

// TailResponse answers GET /v1/pchannels/{p}/tail.
type TailResponse struct {
	PChannel string `json:"pchannel"`
	// NextOffset is the first offset not known to be filled: the writer's
	// ack frontier when this process holds the lease ("writer"), else the
	// first empty slot found in the store ("store"), which may sit below a
	// remote writer's frontier while its last PUTs land.
	NextOffset uint64 `json:"next_offset"`
	Term       uint64 `json:"term"`
	Source     string `json:"source"`
}

// SyncResponse answers POST /v1/pchannels/{p}/sync.
type SyncResponse struct {
	PChannel string `json:"pchannel"`
	Term     uint64 `json:"term"`
	// TimeTick: every message appended later gets a larger timetick, and
	// every message with a smaller one is acknowledged.
	TimeTick uint64 `json:"timetick,string"`
}

// LeaseOut is a lease record as the API shows it (the nonce stays private).
type LeaseOut struct {
	PChannel   string    `json:"pchannel"`
	Term       uint64    `json:"term"`
	Holder     string    `json:"holder"`
	Expires    time.Time `json:"expires"`
	Released   bool      `json:"released"`
	Live       bool      `json:"live"` // neither released nor expired, by this server's clock
	TailHint   uint64    `json:"tail_hint"`
	AcquiredAt time.Time `json:"acquired_at"`
	Version    uint64    `json:"version"`
}

// LeasesResponse answers GET /v1/leases.
type LeasesResponse struct {
	Leases []LeaseOut `json:"leases"`
}

// PChannelStatus is one row of GET /v1/pchannels.
type PChannelStatus struct {
	LeaseOut
	// Tail is the writer's ack frontier if this process writes the
	// pchannel (TailSource "writer"), else the first empty slot probed from
	// the store ("store").
	Tail       uint64 `json:"tail"`
	TailSource string `json:"tail_source"`
	Checkpoint uint64 `json:"checkpoint"`
	// Retention: its policy, the earliest readable position and the bytes
	// its segment files hold.
	Retention RetentionOut `json:"retention"`
}

// StatusResponse answers GET /v1/pchannels.
type StatusResponse struct {
	PChannels []PChannelStatus `json:"pchannels"`
}
