package segmentlog

import "errors"

// Sentinel errors of the WAL. Callers test with errors.Is.
var (
	// ErrCorrupt: a batch object does not decode (bad magic, unknown
	// version, CRC mismatch, truncated or inconsistent fields).
	ErrCorrupt = errors.New("segmentlog: corrupt batch")
	// ErrInvalidName: a pchannel or vchannel name fails ValidateName.
	ErrInvalidName = errors.New("segmentlog: invalid name")
	// ErrFenced: a writer of a higher term has taken the pchannel; this
	// writer has stopped. Appends that failed with it were not acknowledged
	// and will never be delivered.
	ErrFenced = errors.New("segmentlog: fenced by a newer term")
	// ErrClosed: the writer or scanner was closed.
	ErrClosed = errors.New("segmentlog: closed")
	// ErrInvariant: the WAL breaks a protocol invariant (for example a
	// lower-term batch at or beyond a fence window). Fatal; never retried.
	ErrInvariant = errors.New("segmentlog: protocol invariant violated")
	// ErrTooLarge: a message or batch exceeds the configured limit.
	ErrTooLarge = errors.New("segmentlog: too large")
	// ErrInvalidMessage: an append's message breaks a rule of its type (a
	// bad vchannel, a reserved key, a missing property, ...). Nothing was
	// written; sending it again fails the same way.
	ErrInvalidMessage = errors.New("segmentlog: invalid message")
	// ErrSegmentMissing: a SegmentReader found no file for a segment the
	// checkpoint it was given names. Compaction retires files and GC
	// deletes them after a grace, so a reader that held an old checkpoint
	// that long meets it; a Scanner then re-reads the checkpoint and goes
	// on from the newer manifest. Under the current checkpoint it means
	// invariant I10 is broken.
	ErrSegmentMissing = errors.New("segmentlog: segment named by the checkpoint is missing")
)

var (
	// ErrLeaseExpired: the writer could not renew its lease in time; it has
	// stopped. Unacknowledged appends have an unknown outcome.
	ErrLeaseExpired = errors.New("segmentlog: lease expired")
	// ErrOutcomeUnknown: the append may or may not have landed; it may be
	// delivered later. Retry with the same idempotency key to learn its ID.
	ErrOutcomeUnknown = errors.New("segmentlog: append outcome unknown")
	// ErrOffsetMismatch: AppendAt's slot was not the next one; nothing was
	// written.
	ErrOffsetMismatch = errors.New("segmentlog: expected offset is not the next slot")
)
