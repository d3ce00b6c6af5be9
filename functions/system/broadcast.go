package system

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/segmentlog"
)

// Broadcast submits the broadcast req (checked with its Validate, and
// refused with segmentlog.ErrTooLarge if a copy would not fit a writer's
// batch, so that no task is saved with a copy no writer takes) and runs
// it for up to wait; a wait of 0 only submits it. A task is idempotent by
// its ID: submitting one that exists returns it, resumed if pending. A new
// task's vchannels must exist and be active, and a vchannel whose create
// was cut short gets its create message first, so that no copy lands
// before it.
//
// It returns the task as it ended or as last seen: finished, done or
// failed (its state and error say which: a failed task is an outcome, not
// an error), or pending (the wait ran out, another run holds its locks, or
// a sync ack waits for a flush).
func (s *System) Broadcast(ctx context.Context, req coordinator.BroadcastRequest, wait time.Duration) (coordinator.Broadcast, error) {
	if err := CheckBroadcast(&req, s.cfg.MaxBatchBytes); err != nil {
		return coordinator.Broadcast{}, err
	}
	_, err := s.broadcasts.Describe(ctx, req.ID)
	switch {
	case errors.Is(err, coordinator.ErrNoBroadcast):
		for _, v := range req.VChannels {
			if _, err := s.ActiveVChannel(ctx, v); err != nil {
				return coordinator.Broadcast{}, err
			}
		}
	case err != nil:
		return coordinator.Broadcast{}, err
	}
	if wait == 0 {
		return s.broadcasts.Submit(ctx, req)
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	t, err := s.broadcasts.Broadcast(wctx, req)
	waited := wctx.Err() != nil && ctx.Err() == nil // the wait ran out, not the request
	cancel()
	if errors.Is(err, coordinator.ErrBroadcastFailed) {
		return t, nil // finished: its state and error say how it ended
	}
	if errors.Is(err, coordinator.ErrBroadcastBusy) || (err != nil && waited) {
		// Still pending: the task as the run last saw it, or as it is now
		// if the run never read it.
		if t.ID != "" {
			return t, nil
		}
		if cur, derr := s.broadcasts.Describe(ctx, req.ID); derr == nil {
			return cur, nil
		}
	}
	return t, err
}

// CheckBroadcast is what Broadcast checks of a request before anything
// else: req's Validate (which fills in its defaults), then that its
// largest copy, the one of its longest vchannel, fits a batch of
// maxBatchBytes (segmentlog.ErrTooLarge).
func CheckBroadcast(req *coordinator.BroadcastRequest, maxBatchBytes int) error {
	if err := req.Validate(); err != nil {
		return err
	}
	longest := ""
	for _, v := range req.VChannels {
		if len(v) > len(longest) {
			longest = v
		}
	}
	if size := segmentlog.BroadcastCopyBytes(req.ID, longest, req.Payload, req.Properties); size > maxBatchBytes {
		return fmt.Errorf("%w: a copy takes %d bytes; at most %d", segmentlog.ErrTooLarge, size, maxBatchBytes)
	}
	return nil
}
