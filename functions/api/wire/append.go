package wire

// Media types of an append body.
const (
	ContentTypeJSON  = "application/json"
	ContentTypeBatch = "application/x-cairn-batch" // segmentlog's binary batch encoding
)

// AppendRequest is the JSON body of POST /v1/pchannels/{p}/append.
type AppendRequest struct {
	Messages []MessageIn `json:"messages"`
	// ExpectedOffset, if set, makes the append conditional: the batch lands
	// at exactly this offset or nothing is written (412). See doc.go.
	ExpectedOffset *uint64 `json:"expected_offset,omitempty"`
}

// MessageIn is one message to append.
type MessageIn struct {
	VChannel   string            `json:"vchannel"`
	Type       string            `json:"type,omitempty"`    // data (default), insert or delete
	Payload    []byte            `json:"payload,omitempty"` // base64 in JSON
	Properties map[string]string `json:"properties,omitempty"`
	Key        *Key              `json:"key,omitempty"`
}

// Key is an idempotency key (segmentlog.IdemKey).
type Key struct {
	Producer string `json:"producer"`
	Epoch    uint64 `json:"epoch"`
	Seq      uint64 `json:"seq"`
}

// AppendResponse answers an append: one ack per message, in order.
type AppendResponse struct {
	PChannel string `json:"pchannel"`
	Term     uint64 `json:"term"`
	Acks     []Ack  `json:"acks"`
}

// Ack is where one message landed.
type Ack struct {
	Offset   uint64 `json:"offset"`
	Index    uint32 `json:"index"`
	TimeTick uint64 `json:"timetick,string"` // a string: timeticks pass 2^53
	// Duplicate: the idempotency key was acked before; the ack is the
	// first copy's.
	Duplicate bool `json:"duplicate,omitempty"`
}

// ReservedPropertyPrefix starts the property keys Cairn sets itself (such
// as segmentlog.BroadcastDeadlineProperty on a broadcast's copies): every
// write route (appends, transaction appends, broadcasts) refuses them, so
// that a reader can trust them.
const ReservedPropertyPrefix = "cairn."
