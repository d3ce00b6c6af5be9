package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// errUnchanged, returned by a decide function, ends an update without a
// write: the record already says what the caller wants.
var errUnchanged = errors.New("snapshot: record unchanged")

// maxUpdateRounds bounds how often update reads and decides again after
// losing a CAS race.
const maxUpdateRounds = 32

// record is a JSON record changed only by CAS, whose Version grows by one
// on every write: this package's, and the checkpoint (which GC edits when
// it reclaims a dropped vchannel).
type record interface {
	Snapshot | RestoreJob | segmentlog.Checkpoint | PolicyRecord
}

// update reads the record at key (exists=false when there is none), lets
// decide compute its next value, and writes it with PutIfAbsent or
// PutIfMatch on the ETag read. A lost race reads and decides again. A write
// whose outcome is unknown is resolved by reading the record back: our
// exact bytes mean it landed; the same ETag as before means it did not (and,
// being conditional on that ETag, never can after a resend), so the
// identical write is sent again; anything else is a lost race. It returns
// the record as stored.
func update[T record](ctx context.Context, store objstore.Store, key string, timeout time.Duration, decide func(cur T, exists bool) (T, error)) (T, error) {
	var zero T
	for round := 0; round < maxUpdateRounds; round++ {
		cur, etag, exists, err := readRecord[T](ctx, store, key, timeout)
		if err != nil {
			return zero, err
		}
		next, err := decide(cur, exists)
		if errors.Is(err, errUnchanged) {
			return cur, nil
		}
		if err != nil {
			return zero, err
		}
		body, err := json.Marshal(next)
		if err != nil {
			return zero, fmt.Errorf("encode %s: %w", key, err)
		}
		for attempt := 0; ; attempt++ {
			actx, cancel := context.WithTimeout(ctx, timeout)
			if exists {
				_, err = store.PutIfMatch(actx, key, body, etag)
			} else {
				_, err = store.PutIfAbsent(actx, key, body, nil)
			}
			cancel()
			if err == nil {
				return next, nil
			}
			if !objstore.IsRetryable(err) {
				break // a lost race (or a real failure, caught below)
			}
			var obj objstore.Object
			gerr := retry(ctx, func(actx context.Context) error {
				var err error
				obj, err = store.Get(actx, key)
				return err
			}, timeout)
			switch {
			case gerr == nil && bytes.Equal(obj.Body, body):
				return next, nil // ours landed; the reply was lost
			case gerr == nil && exists && obj.ETag == etag,
				errors.Is(gerr, objstore.ErrNotFound) && !exists:
				if !sleep(ctx, backoff(attempt)) {
					return zero, ctx.Err()
				}
				continue // not applied: resend the identical conditional write
			case gerr != nil && !errors.Is(gerr, objstore.ErrNotFound):
				return zero, fmt.Errorf("write %s: outcome unknown (%v) and the record cannot be read: %w", key, err, gerr)
			}
			err = objstore.ErrConflict // someone else wrote: decide again
			break
		}
		if !errors.Is(err, objstore.ErrConflict) && !errors.Is(err, objstore.ErrExists) {
			return zero, fmt.Errorf("write %s: %w", key, err)
		}
	}
	return zero, fmt.Errorf("write %s: lost the CAS race %d times", key, maxUpdateRounds)
}

// readRecord reads and decodes the record at key.
func readRecord[T record](ctx context.Context, store objstore.Store, key string, timeout time.Duration) (T, string, bool, error) {
	var v T
	var obj objstore.Object
	err := retry(ctx, func(actx context.Context) error {
		var err error
		obj, err = store.Get(actx, key)
		return err
	}, timeout)
	if errors.Is(err, objstore.ErrNotFound) {
		return v, "", false, nil
	}
	if err != nil {
		return v, "", false, fmt.Errorf("read %s: %w", key, err)
	}
	v, err = decodeRecord[T](obj.Body)
	if err != nil {
		return v, "", false, fmt.Errorf("read %s: %w", key, err)
	}
	return v, obj.ETag, true, nil
}

// decodeRecord parses a stored record. Every error wraps ErrCorrupt: not
// JSON of the record, or another format.
func decodeRecord[T record](body []byte) (T, error) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	format, want := 0, 0
	switch r := any(&v).(type) {
	case *Snapshot:
		format, want = r.Format, snapshotFormat
	case *RestoreJob:
		format, want = r.Format, restoreFormat
	case *segmentlog.Checkpoint:
		format, want = r.Format, segmentlog.CheckpointFormat
		if segmentlog.KnownCheckpointFormat(format) {
			want = format
		}
	case *PolicyRecord:
		format, want = r.Format, policyFormat
	}
	if format != want {
		return v, fmt.Errorf("%w: unsupported format %d", ErrCorrupt, format)
	}
	return v, nil
}

// listRecords reads every record under prefix.
func listRecords[T record](ctx context.Context, store objstore.Store, prefix string, timeout time.Duration) ([]T, error) {
	var keys []string
	if err := store.List(ctx, prefix, "", func(a objstore.Attrs) error {
		keys = append(keys, a.Key)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		v, _, ok, err := readRecord[T](ctx, store, k, timeout)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, v)
		}
	}
	return out, nil
}
