package wire

// TrimRequest is the body of POST /v1/pchannels/{p}/trim and POST
// /v1/vchannels/{v}/trim.
type TrimRequest struct {
	// Before is id:OFFSET.INDEX: every message with an ID below it is no
	// longer readable. It may not lie beyond the pchannel's tail.
	Before string `json:"before"`
}

// TrimResponse answers a trim: the earliest readable position after it
// (a lower trim point than the current one changes nothing and answers
// the current one).
type TrimResponse struct {
	PChannel string `json:"pchannel"`
	VChannel string `json:"vchannel,omitempty"`
	Earliest string `json:"earliest"` // id:OFFSET.INDEX
}
