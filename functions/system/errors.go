package system

import (
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// ErrShuttingDown: the system is closing and takes no more writes.
var ErrShuttingDown = errors.New("system: shutting down")

// ErrInvalid: a request the runtime refuses before it writes anything
// (beyond what the core's own checks refuse): a restore whose targets do
// not map exactly the snapshot's vchannels, a snapshot of no vchannels, a
// trim point beyond the tail, an ordered append whose messages are not
// keyed by one producer.
var ErrInvalid = errors.New("system: invalid request")

// ErrOutOfSequence: an append that must follow a message (Pool.Append's
// after) found that message neither acked nor queued; nothing was written.
var ErrOutOfSequence = errors.New("system: out of sequence")

// BusyError is the pool's answer when another holder's lease is live and
// did not end within Config.LeaseWait.
type BusyError struct {
	PChannel   string
	Holder     string
	RetryAfter time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("pchannel %s: lease held by %q; retry after %v", e.PChannel, e.Holder, e.RetryAfter)
}

// OffsetMismatchError is the answer to an append whose expected offset is
// not the pchannel's tail; nothing was written. It wraps
// segmentlog.ErrOffsetMismatch.
type OffsetMismatchError struct {
	PChannel       string
	Expected, Tail uint64
}

func (e *OffsetMismatchError) Error() string {
	return fmt.Sprintf("expected_offset %d, but the tail of %s is %d; nothing was written", e.Expected, e.PChannel, e.Tail)
}

func (e *OffsetMismatchError) Unwrap() error { return segmentlog.ErrOffsetMismatch }
