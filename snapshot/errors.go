package snapshot

import (
	"errors"
	"fmt"

	"github.com/cairnlog/cairn/segmentlog"
)

// Sentinel errors of the snapshot package. Each is wrapped once with the
// operation and its subject; callers test with errors.Is.
var (
	// ErrCorrupt: a segment file does not decode (wrong format version,
	// unexpected schema, checksum mismatch, malformed Arrow data), or a
	// record of this package (snapshot, restore job) does not parse.
	ErrCorrupt = errors.New("snapshot: corrupt segment or record")
	// ErrMissingSegment: a manifest names a segment file that is not in the
	// store: compaction retired it and GC deleted it after the grace, while
	// the caller held an older manifest, or else docs/protocol.md invariant I10
	// is broken. It wraps segmentlog.ErrSegmentMissing, on which a Scanner
	// re-reads the checkpoint and goes on.
	ErrMissingSegment = fmt.Errorf("snapshot: segment named by a manifest is missing: %w", segmentlog.ErrSegmentMissing)
	// ErrLostRace: another flusher advanced the checkpoint first; this
	// flush's segment files are orphans that GC reclaims after OrphanAge.
	// FlushNow retries by itself and returns it only when it gives up.
	ErrLostRace = errors.New("snapshot: checkpoint moved under the flush")
	// ErrNotFound: no snapshot or restore job of that name or ID.
	ErrNotFound = errors.New("snapshot: not found")
	// ErrExists: a snapshot of that name exists already (with other
	// vchannels), or a restore target vchannel exists already.
	ErrExists = errors.New("snapshot: already exists")
	// ErrState: the operation does not apply in the record's state (for
	// example restoring a snapshot that is not committed).
	ErrState = errors.New("snapshot: wrong state")
)
