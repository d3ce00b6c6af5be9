package client

import "context"

// The admin calls: what the server's coordinator and node routes show about
// pchannels and leases. Each is one GET (Sync: one POST that writes no
// data), retried on busy answers and transport failures.

// PChannels is the status table: every pchannel with a lease record (every
// pchannel ever written), in name order, with its holder, term, tail and
// flush checkpoint.
func (c *Client) PChannels(ctx context.Context) ([]PChannelStatus, error) {
	var resp struct {
		PChannels []PChannelStatus `json:"pchannels"`
	}
	if err := c.do(ctx, request{method: "GET", path: "/v1/pchannels", idempotent: true}, &resp); err != nil {
		return nil, err
	}
	return resp.PChannels, nil
}

// Lease describes the lease record of pchannel; ErrNotFound if it has none
// (it was never written).
func (c *Client) Lease(ctx context.Context, pchannel string) (Lease, error) {
	path, err := pchannelPath(pchannel, "/lease")
	if err != nil {
		return Lease{}, err
	}
	var l Lease
	err = c.do(ctx, request{method: "GET", path: path, idempotent: true}, &l)
	return l, err
}

// Leases lists every lease record, in pchannel order.
func (c *Client) Leases(ctx context.Context) ([]Lease, error) {
	var resp struct {
		Leases []Lease `json:"leases"`
	}
	if err := c.do(ctx, request{method: "GET", path: "/v1/leases", idempotent: true}, &resp); err != nil {
		return nil, err
	}
	return resp.Leases, nil
}

// Tail is the next offset of pchannel; ErrNotFound if it was never written.
func (c *Client) Tail(ctx context.Context, pchannel string) (Tail, error) {
	path, err := pchannelPath(pchannel, "/tail")
	if err != nil {
		return Tail{}, err
	}
	var t Tail
	err = c.do(ctx, request{method: "GET", path: path, idempotent: true}, &t)
	return t, err
}

// Sync returns a timetick below which nothing more will be written to
// pchannel (it opens the pchannel's writer on the server if needed, but
// never creates a pchannel: ErrNotFound for one never written).
func (c *Client) Sync(ctx context.Context, pchannel string) (SyncResult, error) {
	path, err := pchannelPath(pchannel, "/sync")
	if err != nil {
		return SyncResult{}, err
	}
	var s SyncResult
	err = c.do(ctx, request{method: "POST", path: path, body: []byte("{}"), idempotent: true}, &s)
	return s, err
}

// Health checks that the server takes requests (GET /healthz, which needs
// no token). It is tried once: a server that is down fails at once.
func (c *Client) Health(ctx context.Context) error {
	return c.attempt(ctx, request{method: "GET", path: "/healthz"}, nil)
}
