package wire

// RetentionIn is the body of PUT /v1/pchannels/{p}/retention and PUT
// /v1/vchannels/{v}/retention: the policy that replaces the current one.
// Both bounds left out (or zero) keep everything.
type RetentionIn struct {
	MaxAge   string `json:"max_age,omitempty"` // a Go duration: 1h, 30m
	MaxBytes int64  `json:"max_bytes,omitempty"`
}

// RetentionOut is a retention policy and what it holds now.
type RetentionOut struct {
	PChannel string `json:"pchannel"`
	VChannel string `json:"vchannel,omitempty"`
	MaxAge   string `json:"max_age,omitempty"`
	MaxBytes int64  `json:"max_bytes,omitempty"`
	// Earliest is the earliest readable position (id:OFFSET.INDEX).
	Earliest string `json:"earliest"`
	// BytesHeld is the bytes of the segment files at or above it (the WAL
	// not yet flushed is not counted).
	BytesHeld int64 `json:"bytes_held"`
}
