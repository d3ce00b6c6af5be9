package objstore

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors. Adapters wrap them with the key and the operation; callers
// test with errors.Is.
var (
	// ErrNotFound: the key does not exist (Get, GetIfNoneMatch, GetRange,
	// Head).
	ErrNotFound = errors.New("objstore: not found")
	// ErrNotModified: GetIfNoneMatch found the object still at the ETag the
	// caller holds (S3 304 Not Modified); no body was sent.
	ErrNotModified = errors.New("objstore: not modified")
	// ErrExists: PutIfAbsent found the key already present (S3 412).
	ErrExists = errors.New("objstore: already exists")
	// ErrConflict: PutIfMatch found another ETag, or no object at all
	// (S3 412, or 404 on If-Match).
	ErrConflict = errors.New("objstore: etag conflict")
	// ErrInvalidKey: the key is empty, absolute, escapes the root (".."),
	// or holds a NUL byte or other bytes no adapter can store.
	ErrInvalidKey = errors.New("objstore: invalid key")
	// ErrTransient: the request failed in a way that may succeed if sent
	// again (timeouts, 5xx, SlowDown, S3 409 ConditionalRequestConflict).
	// A write that failed with ErrTransient may or may not have been applied.
	ErrTransient = errors.New("objstore: transient failure")
	// ErrUnsupported: the store does not honour a condition Cairn relies
	// on; returned by Probe.
	ErrUnsupported = errors.New("objstore: store lacks a required capability")
	// ErrCorrupt: a stored object is damaged (filesystem store: a sidecar
	// that fails its checks, or an object file its sidecar does not
	// describe). Not retryable.
	ErrCorrupt = errors.New("objstore: corrupt object file")
	// ErrStopList may be returned by a List callback to end the listing
	// early; List then returns nil.
	ErrStopList = errors.New("objstore: stop listing")
)

// IsRetryable reports whether err is worth sending again. It is the one retry
// predicate of Cairn: every adapter maps its own failures onto ErrTransient
// (or a deadline of its own attempt) so that callers need no adapter
// knowledge. A retried write must resend identical bytes: the first attempt
// may have landed.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, ErrTransient) || errors.Is(err, context.DeadlineExceeded)
}

// Attrs describes a stored object.
type Attrs struct {
	Key          string
	Size         int64
	ETag         string            // opaque; changes on every successful write
	Meta         map[string]string // user metadata; keys are lower-case ASCII
	LastModified time.Time
}

// Object is a whole object read by Get.
type Object struct {
	Attrs
	Body []byte
}

// Store is the object-store port: the only stateful thing Cairn talks to.
//
// Every implementation guarantees:
//   - strong read-after-write: a Get, Head or List that starts after a write
//     returned sees that write;
//   - a write is atomic: readers see the old object or the new one, never a
//     mix;
//   - PutIfAbsent and PutIfMatch are linearizable per key: of any number of
//     racing PutIfAbsent calls on one key exactly one succeeds, and a
//     PutIfMatch succeeds only against the ETag current at that instant;
//   - List yields keys in ascending byte order.
//
// Portable key sets have no key that is a whole-element prefix of another
// ("a/b" beside "a/b/c"): MinIO stores and reads both but lists only
// "a/b". Cairn's bucket layout never needs such pairs.
//
// Implementations are safe for concurrent use.
type Store interface {
	// Get reads a whole object. ErrNotFound if absent.
	Get(ctx context.Context, key string) (Object, error)
	// GetIfNoneMatch reads a whole object unless its current ETag is etag
	// (If-None-Match): then it returns ErrNotModified and transfers no
	// body, so a caller that keeps the last version it read re-reads it
	// only when it changed. It is as fresh as Get: ErrNotModified means
	// etag is the current ETag at that instant. ErrNotFound if absent; an
	// empty etag (no object has one) makes it a plain Get.
	GetIfNoneMatch(ctx context.Context, key, etag string) (Object, error)
	// GetRange reads n bytes from offset off (fewer at the end of the
	// object; n < 0 reads to the end). ErrNotFound if absent.
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	// Head reads an object's attributes. ErrNotFound if absent.
	Head(ctx context.Context, key string) (Attrs, error)
	// PutIfAbsent creates key with body and user metadata, only if no object
	// exists under key (If-None-Match: *). ErrExists if one does.
	PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (etag string, err error)
	// PutIfMatch replaces key only if its current ETag is etag (If-Match).
	// ErrConflict if the ETag differs or the object is absent. Like Put, it
	// replaces the whole object: the new version has no user metadata.
	PutIfMatch(ctx context.Context, key string, body []byte, etag string) (newETag string, err error)
	// Put writes key unconditionally.
	Put(ctx context.Context, key string, body []byte) (etag string, err error)
	// List calls fn for every key that starts with prefix and sorts after
	// startAfter ("" for all), in ascending order, paginating as needed.
	// If fn returns ErrStopList, List stops and returns nil; any other error
	// from fn is returned as is.
	List(ctx context.Context, prefix, startAfter string, fn func(Attrs) error) error
	// Delete removes key. Deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
}
