package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

// The vchannel registry: create, list, describe, drop, locate. A vchannel
// is a logical stream bound for good to one pchannel; its name is never
// used again once dropped.

// VChannel is a vchannel's registry record.
type VChannel struct {
	Name     string `json:"name"`
	PChannel string `json:"pchannel"` // the binding; never changes
	// State is "active", "dropped" or "reclaiming" (GC is deleting its
	// data).
	State     string     `json:"state"`
	CreatedAt time.Time  `json:"created_at"`
	Created   *WALMark   `json:"created,omitempty"` // where its create message landed
	DroppedAt *time.Time `json:"dropped_at,omitempty"`
	Dropped   *WALMark   `json:"dropped,omitempty"` // where its drop message landed
	// Position is the flushed position: every message of the vchannel
	// below it is in segments.
	Position VChannelPosition `json:"position"`
	Pins     []string         `json:"pins"` // snapshots (and restore jobs) that keep its data
	Version  uint64           `json:"version"`
	// Trim is the vchannel's own trim point (id:OFFSET.INDEX); "" if none.
	Trim string `json:"trim,omitempty"`
	// Retention is set by VChannel (describe) only.
	Retention *Retention `json:"retention,omitempty"`
}

// WALMark is where a control message landed in the vchannel's pchannel.
type WALMark struct {
	Offset   uint64 `json:"offset"`
	Index    uint32 `json:"index"`
	TimeTick uint64 `json:"timetick,string"`
}

// VChannelPosition is a vchannel's flushed position; Done once dropped.
type VChannelPosition struct {
	Offset   uint64 `json:"offset"`
	Index    uint32 `json:"index"`
	TimeTick uint64 `json:"timetick,string"`
	Done     bool   `json:"done"`
}

// VChannelFilter selects vchannels in VChannels; zero fields select all.
type VChannelFilter struct {
	PChannel string
	State    string // "active", "dropped" or "reclaiming"
}

// Location is where a vchannel's appends go: its pchannel, the node
// holding the pchannel's lease and that node's address ("" when the holder
// is not a registered node).
type Location struct {
	VChannel   string    `json:"vchannel"`
	PChannel   string    `json:"pchannel"`
	Node       string    `json:"node"`
	Address    string    `json:"address"`
	Term       uint64    `json:"term"`
	Expires    time.Time `json:"expires"`
	Assignment struct {
		State string `json:"state"`
		Node  string `json:"node,omitempty"`
	} `json:"assignment"`
}

// CreateVChannel creates vchannel name, bound to pchannel (one of the
// server's pchannel set) or, if pchannel is "", to the least loaded one.
// Creating an existing vchannel with a matching binding returns it (so the
// call is retried freely); another binding or a dropped name fails with
// ErrConflict, a pchannel outside the set with ErrNotFound.
func (c *Client) CreateVChannel(ctx context.Context, name, pchannel string) (VChannel, error) {
	if name == "" {
		return VChannel{}, fmt.Errorf("client: create vchannel: %w: empty name", ErrInvalid)
	}
	body, err := json.Marshal(vchannelCreateBody{name, pchannel})
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
