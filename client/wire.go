package client

// The bodies the SDK sends, and answers it decodes into no exported type:
// hand copies of functions/api's types (wire_test.go checks them, and the
// exported ones, against openapi.yaml).
type (
	broadcastBody struct {
		ID         string            `json:"id"`
		VChannels  []string          `json:"vchannels"`
		Payload    []byte            `json:"payload,omitempty"`
		Properties map[string]string `json:"properties,omitempty"`
		Ack        string            `json:"ack,omitempty"`
		Resources  []string          `json:"resources,omitempty"`
		Wait       string            `json:"wait,omitempty"`
	}
	snapshotCreateBody struct {
		Name      string   `json:"name"`
		VChannels []string `json:"vchannels"`
	}
	restoreBody struct {
		JobID   string            `json:"job_id"`
		Targets map[string]string `json:"targets"`
	}
	vchannelCreateBody struct {
		Name     string `json:"name"`
		PChannel string `json:"pchannel,omitempty"`
	}
	txnBeginBody struct {
		Keepalive string `json:"keepalive,omitempty"`
	}
	txnOut struct {
		Txn      string `json:"txn"`
		PChannel string `json:"pchannel"`
		VChannel string `json:"vchannel"`
		Term     uint64 `json:"term"`
	}
)
