package wire

// ReadResponse answers GET /v1/pchannels/{p}/messages.
type ReadResponse struct {
	PChannel string       `json:"pchannel"`
	VChannel string       `json:"vchannel,omitempty"` // on GET /v1/vchannels/{v}/messages
	Messages []MessageOut `json:"messages"`
	Next     string       `json:"next"` // the position to read from next
	// Paused: the server's scanner startup delay held this read back for
	// its whole wait; nothing was read. Read again from next (or with
	// ignore_pause=true).
	Paused bool `json:"paused,omitempty"`
}

// MessageOut is one delivered message.
type MessageOut struct {
	Offset     uint64            `json:"offset"`
	Index      uint32            `json:"index"`
	Term       uint64            `json:"term"`
	TimeTick   uint64            `json:"timetick,string"`
	Type       string            `json:"type"`
	VChannel   string            `json:"vchannel,omitempty"`
	Payload    []byte            `json:"payload,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
	Key        *Key              `json:"key,omitempty"`
	// BroadcastID names the broadcast a broadcast copy belongs to.
	BroadcastID string `json:"broadcast_id,omitempty"`
	// Restored: the message is part of a restored vchannel's history, read
	// from the snapshot's segments; Offset, Index and Term are those of the
	// snapshot's source pchannel, and its position is restored:OFFSET.INDEX.
	Restored bool `json:"restored,omitempty"`
}
