package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
)

// Broadcasts: one message on several vchannels, a copy on each, as a task
// of the server's coordinator. A task is idempotent by its ID: sending it
// again returns it, and each vchannel gets one copy however often it is
// sent or resumed.

// Ack modes of a broadcast: when a copy counts as acknowledged.
const (
	AckFast = "fast" // the copy is in the WAL (the default)
	AckSync = "sync" // the copy's pchannel is flushed past it
)

// defaultBroadcastWait is the server's wait when a request names none.
const defaultBroadcastWait = 10 * time.Second

// Broadcast task states.
const (
	BroadcastPending = "pending" // copies being appended, or waiting for flushes (AckSync)
	BroadcastDone    = "done"    // every vchannel has its copy, acknowledged
	// BroadcastFailed: a copy could not be acknowledged in time to be sent
	// again safely; BroadcastTask.Error says which.
	BroadcastFailed = "failed"
)

// BroadcastRequest asks for one message on several vchannels.
type BroadcastRequest struct {
	// ID names the broadcast (a name: letters, digits, '_', '.', '-').
	// Sending the same request again returns its task; the ID with other
	// content fails with ErrConflict.
	ID         string
	VChannels  []string // at least one, distinct, each active
	Payload    []byte
	Properties map[string]string // copied onto every copy; keys starting with "cairn." are reserved
	Ack        string            // AckFast (default) or AckSync
	// Resources are more resource locks to hold while the copies are
	// appended, to order this broadcast against others naming them (the
	// vchannels' locks are always held).
	Resources []string
	// Wait bounds how long the server runs the task before it answers with
	// the task pending: 0 takes the server's default (10 s), a negative
	// Wait only persists the task. The server caps it at its max wait
	// (CAIRN_MAX_WAIT, 20 s by default).
	Wait time.Duration
}

// BroadcastTask is a broadcast task as the server shows it.
type BroadcastTask struct {
	ID         string            `json:"id"`
	State      string            `json:"state"` // BroadcastPending, BroadcastDone or BroadcastFailed
	Ack        string            `json:"ack"`
	Targets    []BroadcastTarget `json:"targets"` // in vchannel order
	Error      string            `json:"error,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
	Version    uint64            `json:"version"`
}

// BroadcastTarget is one vchannel of a broadcast and how far its copy got.
// Appended is where the copy landed (nil until acknowledged); Synced says
// the pchannel's flush checkpoint passed it; Skipped says why no copy was
// appended: "dropped" when the vchannel was dropped before its copy was
// sent.
type BroadcastTarget = wire.BroadcastTargetOut

// Finished reports whether the task is done or failed.
func (t BroadcastTask) Finished() bool { return t.State != BroadcastPending }

// Broadcast sends req and returns its task once it is finished or the
// server's wait ran out: check State — done, failed (a finished task is
// not an error; Error says why it failed), or pending (follow it with
// DescribeBroadcast; the server resumes it in the background, and sending
// req again resumes it too). The call is retried freely. An unknown
// vchannel fails with ErrNotFound; a dropped one, or the ID taken by
// another broadcast, with ErrConflict; a copy over the server's batch limit
// with ErrTooLarge.
func (c *Client) Broadcast(ctx context.Context, req BroadcastRequest) (BroadcastTask, error) {
	if req.ID == "" || len(req.VChannels) == 0 {
		return BroadcastTask{}, fmt.Errorf("client: broadcast: %w: an ID and at least one vchannel", ErrInvalid)
	}
	wait := ""
	switch {
	case req.Wait < 0:
		wait = "0s"
	case req.Wait > 0:
		wait = req.Wait.String()
	}
	body, err := json.Marshal(wire.BroadcastRequest{ID: req.ID, VChannels: req.VChannels, Payload: req.Payload,
		Properties: req.Properties, Ack: req.Ack, Resources: req.Resources, Wait: wait})
	if err != nil {
		return BroadcastTask{}, err
	}
	// The attempt's timeout covers the server's wait. A retry after a lost
	// reply is safe: the server answers the same task.
	w := req.Wait
	if w == 0 {
		w = defaultBroadcastWait
	}
	var t BroadcastTask
	err = c.do(ctx, request{method: "POST", path: "/v1/broadcasts", body: body, wait: max(w, 0), write: true, idempotent: true}, &t)
	return t, err
}

// DescribeBroadcast returns broadcast task id; ErrNotFound if there is
// none (never sent, or deleted an hour after it finished).
func (c *Client) DescribeBroadcast(ctx context.Context, id string) (BroadcastTask, error) {
	path, err := namePath("broadcast", "/v1/broadcasts", id, "")
	if err != nil {
		return BroadcastTask{}, err
	}
	var t BroadcastTask
	err = c.do(ctx, request{method: "GET", path: path, idempotent: true}, &t)
	return t, err
}

// ListBroadcasts lists the broadcast tasks not deleted yet, in ID order;
// with a state, those in it.
func (c *Client) ListBroadcasts(ctx context.Context, state string) ([]BroadcastTask, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	var resp struct {
		Broadcasts []BroadcastTask `json:"broadcasts"`
	}
	if err := c.do(ctx, request{method: "GET", path: "/v1/broadcasts", query: q, idempotent: true}, &resp); err != nil {
		return nil, err
	}
	return resp.Broadcasts, nil
}
