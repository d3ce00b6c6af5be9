package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/cas"
	"github.com/cairnlog/cairn/segmentlog"
)

// maxUpdateRounds bounds the rounds (read, decide, write) of one update.
const maxUpdateRounds = 32

// record is a JSON record changed only by CAS, whose Version grows by one
// on every write: this package's, and the checkpoint (which GC edits when
// it reclaims a dropped vchannel); or an immutable one (RetiredList).
type record interface {
	Snapshot | RestoreJob | segmentlog.Checkpoint | PolicyRecord | RetiredList
}

// update changes the record at key by compare-and-swap (cas.Update): it
// reads the record (exists=false when there is none), lets decide compute
// its next value, and writes it with PutIfAbsent or PutIfMatch on the ETag
// read. A lost race reads and decides again; a write whose outcome is
// unknown is settled by reading the record back (cas.Update states the
// policy). decide returns cas.ErrUnchanged to write nothing. It returns the
// record as stored; an error of decide comes back as it is.
func update[T record](ctx context.Context, store objstore.Store, key string, timeout time.Duration, decide func(cur T, exists bool) (T, error)) (T, error) {
	decided := false // the last decide failed: its error ends the update
	rec, err := cas.Update(ctx, store, key, recordCodec[T](), recordPolicy(timeout), func(cur cas.Record[T]) (T, error) {
		next, err := decide(cur.Value, cur.Exists)
		decided = err != nil
		return next, err
	})
	switch {
	case err == nil:
		return rec.Value, nil
	case decided:
		return rec.Value, err
	}
	return rec.Value, fmt.Errorf("update %s: %w", key, err)
}

// recordCodec stores a record as JSON.
func recordCodec[T record]() cas.Codec[T] {
	return cas.Codec[T]{Encode: func(v T) ([]byte, error) { return json.Marshal(v) }, Decode: decodeRecord[T]}
}

// recordPolicy is how update tries: up to maxUpdateRounds rounds, each
// request bounded by timeout, with storeBackoff between them.
func recordPolicy(timeout time.Duration) cas.Policy {
	return cas.Policy{Timeout: timeout, MaxAttempts: maxUpdateRounds, Backoff: storeBackoff}
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
	case *RetiredList:
		format, want = r.Format, retiredListFormat
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
