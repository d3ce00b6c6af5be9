package wire

import "time"

// VChannelCreateRequest is the body of POST /v1/vchannels.
type VChannelCreateRequest struct {
	Name string `json:"name"`
	// PChannel binds the vchannel to this pchannel of the set; empty: the
	// one with the fewest active vchannels.
	PChannel string `json:"pchannel,omitempty"`
}

// VChannelOut is a vchannel record as the API shows it.
type VChannelOut struct {
	Name      string     `json:"name"`
	PChannel  string     `json:"pchannel"`
	State     string     `json:"state"` // active, dropped or reclaiming
	CreatedAt time.Time  `json:"created_at"`
	Created   *MarkOut   `json:"created,omitempty"` // where the create message landed
	DroppedAt *time.Time `json:"dropped_at,omitempty"`
	Dropped   *MarkOut   `json:"dropped,omitempty"` // where the drop message landed
	// Position is the flushed position: every message of the vchannel
	// below it is in segments. Done once dropped.
	Position PositionOut `json:"position"`
	Pins     []string    `json:"pins"` // snapshots (and restore jobs) pinning its data
	Version  uint64      `json:"version"`
	// Trim is the vchannel's own trim point (id:OFFSET.INDEX), if any.
	Trim string `json:"trim,omitempty"`
	// Retention (describe only): its policy, the earliest readable
	// position and the bytes its segment files hold.
	Retention *RetentionOut `json:"retention,omitempty"`
}

// MarkOut is where a control message landed.
type MarkOut struct {
	Offset   uint64 `json:"offset"`
	Index    uint32 `json:"index"`
	TimeTick uint64 `json:"timetick,string"`
}

// PositionOut is a vchannel's flushed position.
type PositionOut struct {
	Offset   uint64 `json:"offset"`
	Index    uint32 `json:"index"`
	TimeTick uint64 `json:"timetick,string"`
	Done     bool   `json:"done"`
}

// VChannelsResponse answers GET /v1/vchannels.
type VChannelsResponse struct {
	VChannels []VChannelOut `json:"vchannels"`
}

// LocationOut answers GET /v1/vchannels/{v}/location: where to send the
// vchannel's appends.
type LocationOut struct {
	VChannel string `json:"vchannel"`
	PChannel string `json:"pchannel"`
	// Node holds the pchannel's lease; Address is its session address, ""
	// when the holder is not a registered node (a Lambda container).
	Node    string    `json:"node"`
	Address string    `json:"address"`
	Term    uint64    `json:"term"`
	Expires time.Time `json:"expires"`
	// Assignment is the balancer's record of the pchannel: where it is
	// going, if it is moving.
	Assignment AssignmentOut `json:"assignment"`
}

// AssignmentOut is a pchannel's assignment record, in short.
type AssignmentOut struct {
	State string `json:"state"`
	Node  string `json:"node,omitempty"`
}
