package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/cairnlog/cairn/functions/api/wire"
)

// The vchannel registry: create, list, describe, drop, locate. A vchannel
// is a logical stream bound for good to one pchannel; its name is never
// used again once dropped.

// VChannel is a vchannel's registry record.
// Its PChannel (the binding) never changes; State is "active", "dropped"
// or "reclaiming" (GC is deleting its data); Position is the flushed
// position (every message of the vchannel below it is in segments); Trim
// is its own trim point (id:OFFSET.INDEX), "" if none; Retention is set by
// VChannel (describe) only.
type VChannel = wire.VChannelOut

// WALMark is where a control message landed in the vchannel's pchannel.
type WALMark = wire.MarkOut

// VChannelPosition is a vchannel's flushed position; Done once dropped.
type VChannelPosition = wire.PositionOut

// VChannelFilter selects vchannels in VChannels; zero fields select all.
type VChannelFilter struct {
	PChannel string
	State    string // "active", "dropped" or "reclaiming"
}

// Location is where a vchannel's appends go: its pchannel, the node
// holding the pchannel's lease and that node's address ("" when the holder
// is not a registered node).
type Location = wire.LocationOut

// CreateVChannel creates vchannel name, bound to pchannel (one of the
// server's pchannel set) or, if pchannel is "", to the least loaded one.
// Creating an existing vchannel with a matching binding returns it (so the
// call is retried freely); another binding or a dropped name fails with
// ErrConflict, a pchannel outside the set with ErrNotFound.
func (c *Client) CreateVChannel(ctx context.Context, name, pchannel string) (VChannel, error) {
	if name == "" {
		return VChannel{}, fmt.Errorf("client: create vchannel: %w: empty name", ErrInvalid)
	}
	body, err := json.Marshal(wire.VChannelCreateRequest{Name: name, PChannel: pchannel})
	if err != nil {
		return VChannel{}, err
	}
	var v VChannel
	err = c.do(ctx, request{method: "POST", path: "/v1/vchannels", body: body, idempotent: true}, &v)
	return v, err
}

// VChannels lists the vchannels that match f, in name order.
func (c *Client) VChannels(ctx context.Context, f VChannelFilter) ([]VChannel, error) {
	q := url.Values{}
	if f.PChannel != "" {
		q.Set("pchannel", f.PChannel)
	}
	if f.State != "" {
		q.Set("state", f.State)
	}
	var resp struct {
		VChannels []VChannel `json:"vchannels"`
	}
	if err := c.do(ctx, request{method: "GET", path: "/v1/vchannels", query: q, idempotent: true}, &resp); err != nil {
		return nil, err
	}
	return resp.VChannels, nil
}

// VChannel describes vchannel name; ErrNotFound if there is none.
func (c *Client) VChannel(ctx context.Context, name string) (VChannel, error) {
	path, err := vchannelPath(name, "")
	if err != nil {
		return VChannel{}, err
	}
	var v VChannel
	err = c.do(ctx, request{method: "GET", path: path, idempotent: true}, &v)
	return v, err
}

// DropVChannel drops vchannel name and returns its record, now dropped.
// Its data stays until GC reclaims it, after every snapshot that pins it is
// dropped. Dropping again is harmless; ErrNotFound for an unknown name.
func (c *Client) DropVChannel(ctx context.Context, name string) (VChannel, error) {
	path, err := vchannelPath(name, "")
	if err != nil {
		return VChannel{}, err
	}
	var v VChannel
	err = c.do(ctx, request{method: "DELETE", path: path, idempotent: true}, &v)
	return v, err
}

// Locate says where vchannel's appends go. While no lease of its pchannel
// is live (the pchannel is moving) it fails with ErrUnavailable after the
// retry policy's attempts.
func (c *Client) Locate(ctx context.Context, vchannel string) (Location, error) {
	path, err := vchannelPath(vchannel, "/location")
	if err != nil {
		return Location{}, err
	}
	var l Location
	err = c.do(ctx, request{method: "GET", path: path, idempotent: true}, &l)
	return l, err
}
