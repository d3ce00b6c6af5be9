package wire

// TxnBeginRequest is the (optional) body of POST /v1/vchannels/{v}/txns.
type TxnBeginRequest struct {
	// Keepalive: the transaction is rolled back when no call touches it
	// this long (a Go duration, at most 10m). Default 1m.
	Keepalive string `json:"keepalive,omitempty"`
}

// TxnOut answers a begin.
type TxnOut struct {
	Txn       string `json:"txn"` // the handle of the other calls
	PChannel  string `json:"pchannel"`
	VChannel  string `json:"vchannel"`
	Term      uint64 `json:"term"`
	Keepalive string `json:"keepalive"`
}

// TxnAppendResponse answers POST /v1/txns/{txn}/append: the messages are
// buffered, to be written by the commit.
type TxnAppendResponse struct {
	Txn      string `json:"txn"`
	Appended int    `json:"appended"`
}

// TxnCommitResponse answers a commit: one ack per body message, then the
// commit's own. A retried commit whose first try landed gets only the
// commit's ack, marked duplicate.
type TxnCommitResponse struct {
	Txn      string `json:"txn"`
	PChannel string `json:"pchannel"`
	Term     uint64 `json:"term"`
	Acks     []Ack  `json:"acks"`
}
