package client

import (
	"context"
	"encoding/json"
	"fmt"
)

// TrimResult is the answer of a trim: the earliest readable position after
// it.
type TrimResult struct {
	PChannel string `json:"pchannel"`
	VChannel string `json:"vchannel,omitempty"`
	Earliest string `json:"earliest"` // id:OFFSET.INDEX
}

// TrimPChannel trims pchannel before position before (id:OFFSET.INDEX, as
// AtID makes): no message with a lower ID is readable any more, and the
// server's GC may delete it (but not what a snapshot pins). A point at or
// below the current one changes nothing, so it is retried freely. A point
// beyond the tail fails with ErrInvalid, a pchannel never written with
// ErrNotFound.
func (c *Client) TrimPChannel(ctx context.Context, pchannel, before string) (TrimResult, error) {
	path, err := pchannelPath(pchannel, "/trim")
	if err != nil {
		return TrimResult{}, err
	}
	return c.trim(ctx, path, before)
}

// TrimVChannel trims vchannel before position before (an ID of its
// pchannel): its messages with a lower ID are no longer readable, and a
// restored vchannel's restored history is gone. As TrimPChannel otherwise.
func (c *Client) TrimVChannel(ctx context.Context, vchannel, before string) (TrimResult, error) {
	path, err := vchannelPath(vchannel, "/trim")
	if err != nil {
		return TrimResult{}, err
	}
	return c.trim(ctx, path, before)
}

func (c *Client) trim(ctx context.Context, path, before string) (TrimResult, error) {
	if before == "" {
		return TrimResult{}, fmt.Errorf("client: trim: %w: no position", ErrInvalid)
	}
	body, err := json.Marshal(struct {
		Before string `json:"before"`
	}{before})
	if err != nil {
		return TrimResult{}, err
	}
	var r TrimResult
	err = c.do(ctx, request{method: "POST", path: path, body: body, idempotent: true}, &r)
	return r, err
}
