package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
)

// TrimResult is the answer of a trim: the earliest readable position after
// it.
type TrimResult = wire.TrimResponse

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
	body, err := json.Marshal(wire.TrimRequest{Before: before})
	if err != nil {
		return TrimResult{}, err
	}
	var r TrimResult
	err = c.do(ctx, request{method: "POST", path: path, body: body, idempotent: true}, &r)
	return r, err
}

// Retention is a retention policy and what it holds now.
// MaxAge is a Go duration ("" for no age bound); Earliest is the earliest
// readable position (id:OFFSET.INDEX); BytesHeld is the bytes of the
// segment files at or above Earliest (the WAL not yet flushed is not
// counted).
type Retention = wire.RetentionOut

// RetentionPolicy bounds what a pchannel or vchannel keeps; a zero field
// sets no bound, and the zero policy keeps everything.
type RetentionPolicy struct {
	MaxAge   time.Duration // segment files written longer ago are trimmed
	MaxBytes int64         // the oldest segment files beyond it are trimmed
}

// SetPChannelRetention replaces pchannel's retention policy; the server's
// maintenance trims it down to the policy before each GC. ErrNotFound for
// a pchannel never written, ErrInvalid for a negative bound.
func (c *Client) SetPChannelRetention(ctx context.Context, pchannel string, p RetentionPolicy) (Retention, error) {
	path, err := pchannelPath(pchannel, "/retention")
	if err != nil {
		return Retention{}, err
	}
	return c.setRetention(ctx, path, p)
}

// SetVChannelRetention replaces vchannel's retention policy, which trims
// the vchannel (not its pchannel). As SetPChannelRetention otherwise.
func (c *Client) SetVChannelRetention(ctx context.Context, vchannel string, p RetentionPolicy) (Retention, error) {
	path, err := vchannelPath(vchannel, "/retention")
	if err != nil {
		return Retention{}, err
	}
	return c.setRetention(ctx, path, p)
}

func (c *Client) setRetention(ctx context.Context, path string, p RetentionPolicy) (Retention, error) {
	if p.MaxAge < 0 || p.MaxBytes < 0 {
		return Retention{}, fmt.Errorf("client: retention: %w: bounds must be ≥ 0", ErrInvalid)
	}
	in := struct {
		MaxAge   string `json:"max_age,omitempty"`
		MaxBytes int64  `json:"max_bytes,omitempty"`
	}{MaxBytes: p.MaxBytes}
	if p.MaxAge > 0 {
		in.MaxAge = p.MaxAge.String()
	}
	body, err := json.Marshal(in)
	if err != nil {
		return Retention{}, err
	}
	var r Retention
	err = c.do(ctx, request{method: "PUT", path: path, body: body, idempotent: true}, &r)
	return r, err
}
