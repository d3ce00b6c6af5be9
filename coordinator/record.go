package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cairnlog/cairn/infra/backoff"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/cas"
)

// maxAttempts bounds the rounds of one record operation (a read, or a
// read–decide–write). A round is lost only to a concurrent writer (which
// made progress) or to a transient store failure.
const maxAttempts = 16

// retryBackoff is the pause between those rounds: up to 2ms, 4ms, … 64ms,
// so racing coordinators spread out.
var retryBackoff = backoff.Policy{Min: 2 * time.Millisecond, Max: 64 * time.Millisecond}

// The registry, session and assignment records share one way of being
// stored: a JSON object per name with a "format" number and a monotone
// "version", created with PutIfAbsent and changed only with PutIfMatch
// (docs/protocol.md, "Records"); leases (leases.go) too.

// ErrCorrupt: a stored record (lease, vchannel, node, assignment,
// broadcast, lock) is not JSON of its kind, has no or an unknown "format",
// or contradicts its key or itself (unknown state, missing node). A decoder
// of this package never panics; every error it returns wraps ErrCorrupt.
var ErrCorrupt = errors.New("coordinator: corrupt record")

// codec describes one kind of record.
type codec[T any] struct {
	kind    string // "vchannel", "node", "assignment": for keys' names and errors
	key     func(name string) string
	prefix  string
	encode  func(T) ([]byte, error)
	decode  func(name string, b []byte) (T, error)
	version func(T) uint64
}

// records is a store with the timeouts and clock of one component.
type records struct {
	store   objstore.Store
	timeout time.Duration
	now     func() time.Time
}

// checkFormat rejects a record without a "format" field or with another
// one than want.
func checkFormat(kind, name string, b []byte, want int) error {
	var probe struct {
		Format *int `json:"format"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return fmt.Errorf("%w: %s record of %s: %w", ErrCorrupt, kind, name, err)
	}
	if probe.Format == nil {
		return fmt.Errorf("%w: %s record of %s: no \"format\" field", ErrCorrupt, kind, name)
	}
	if *probe.Format != want {
		return fmt.Errorf("%w: %s record of %s: unknown format %d (this build reads format %d)", ErrCorrupt,
			kind, name, *probe.Format, want)
	}
	return nil
}

// checkTimes rejects a record holding a time that is outside the years
// JSON can encode (0–9999) once moved to UTC, as every encoder does: such a
// record would decode but could never be written back, wedging every update
// of it.
func checkTimes(kind, name string, ts ...time.Time) error {
	for _, t := range ts {
		if y := t.UTC().Year(); y < 0 || y > 9999 {
			return fmt.Errorf("%w: %s record of %s: time %v outside years 0-9999", ErrCorrupt, kind, name, t)
		}
	}
	return nil
}

// utc drops the monotonic reading and the zone, so a stored time reads back
// equal to what was written.
func utc(t time.Time) time.Time { return t.UTC().Round(0) }

// readRecord reads the record name: nil if there is none.
func readRecord[T any](ctx context.Context, r records, c codec[T], name string) (*T, objstore.Object, error) {
	rctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	obj, err := r.store.Get(rctx, c.key(name))
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, objstore.Object{}, nil
	}
	if err != nil {
		return nil, objstore.Object{}, err
	}
	rec, err := c.decode(name, obj.Body)
	if err != nil {
		return nil, objstore.Object{}, err
	}
	return &rec, obj, nil
}

// describeRecord reads the record name, retrying transient failures; nil if
// there is none.
func describeRecord[T any](ctx context.Context, r records, c codec[T], name string) (*T, error) {
	var rec *T
	err := retryTransient(ctx, func() (err error) {
		rec, _, err = readRecord(ctx, r, c, name)
		return err
	})
	return rec, err
}

// retryTransient runs op until it succeeds, fails for good, or has failed
// maxAttempts times with transient errors (backing off between attempts).
func retryTransient(ctx context.Context, op func() error) error {
	pauses := retryBackoff.Start()
	var err error
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := pauses.Wait(ctx); err != nil {
				return err
			}
		}
		if err = op(); err == nil || !objstore.IsRetryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return fmt.Errorf("gave up after %d attempts: %w", maxAttempts, err)
}

// updateRecord changes the record name by compare-and-swap (cas.Update,
// whose policy settles a write whose reply was lost) until a decision is
// stored, needs no write (same version), or fails; it returns the record as
// stored and its ETag.
func updateRecord[T any](ctx context.Context, r records, c codec[T], name string,
	decide func(cur *T, now time.Time) (T, error)) (T, string, error) {
	codec := cas.Codec[T]{Encode: c.encode, Decode: func(b []byte) (T, error) { return c.decode(name, b) }}
	policy := cas.Policy{Timeout: r.timeout, MaxAttempts: maxAttempts, Backoff: retryBackoff}
	rec, err := cas.Update(ctx, r.store, c.key(name), codec, policy, func(cur cas.Record[T]) (T, error) {
		var p *T
		if cur.Exists {
			p = &cur.Value
		}
		next, err := decide(p, r.now())
		if err == nil && cur.Exists && c.version(next) == c.version(cur.Value) {
			return next, cas.ErrUnchanged // nothing to change: an idempotent retry
		}
		return next, err
	})
	return rec.Value, rec.ETag, err
}

// putRecord makes one conditional write: create if absent, else replace if
// the ETag still matches. The balancer and the heartbeat use it where a
// periodic round is the loop: they write what they decided from their
// mirror or last write in one request, and a conflict or an unknown outcome
// makes the next round read the record (the heartbeat: updateRecord).
func putRecord(ctx context.Context, r records, key string, body []byte, etag string, create bool) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if create {
		return r.store.PutIfAbsent(rctx, key, body, nil)
	}
	return r.store.PutIfMatch(rctx, key, body, etag)
}

// mirror is a local copy of every record under one prefix, refreshed with
// one LIST and a GET of each record whose listed ETag changed: an unchanged
// prefix costs one request. It is not safe for concurrent use; its owner
// serialises access.
type mirror[T any] struct {
	c       codec[T]
	entries map[string]*mirrored[T]
}

type mirrored[T any] struct {
	rec      T
	etag     string // from the GET (or our own write): what a CAS must match
	listETag string // as last listed: a change means the record changed
}

func newMirror[T any](c codec[T]) *mirror[T] {
	return &mirror[T]{c: c, entries: make(map[string]*mirrored[T])}
}

// refreshRetrying is refresh for the read APIs (list, describe): a slow
// or failed request is retried with backoff, as describeRecord does, so a
// caller sees an error only when the store stays unavailable. The loops
// (balancer rounds, node polls) call refresh once and try again next round.
func (m *mirror[T]) refreshRetrying(ctx context.Context, r records) error {
	return retryTransient(ctx, func() error { return m.refresh(ctx, r) })
}

// refresh lists the prefix and reads every new or changed record. Records
// that disappeared from the listing are forgotten (records are never
// deleted; a store that did is tolerated).
func (m *mirror[T]) refresh(ctx context.Context, r records) error {
	type listed struct{ name, etag string }
	var keys []listed
	lctx, cancel := context.WithTimeout(ctx, r.timeout)
	err := r.store.List(lctx, m.c.prefix, "", func(a objstore.Attrs) error {
		if name, ok := nameOfKey(m.c.prefix, m.c.kind, a.Key); ok {
			keys = append(keys, listed{name, a.ETag})
		}
		return nil
	})
	cancel()
	if err != nil {
		return fmt.Errorf("list %s records: %w", m.c.kind, err)
	}
	present := make(map[string]bool, len(keys))
	for _, k := range keys {
		present[k.name] = true
		if e, ok := m.entries[k.name]; ok && e.listETag == k.etag && k.etag != "" {
			continue
		}
		rec, obj, err := readRecord(ctx, r, m.c, k.name)
		if err != nil {
			return fmt.Errorf("read %s record %s: %w", m.c.kind, k.name, err)
		}
		if rec == nil {
			delete(m.entries, k.name)
			continue
		}
		m.entries[k.name] = &mirrored[T]{rec: *rec, etag: obj.ETag, listETag: k.etag}
	}
	for name := range m.entries {
		if !present[name] {
			delete(m.entries, name)
		}
	}
	return nil
}

// set records our own successful write of name.
func (m *mirror[T]) set(name string, rec T, etag string) {
	m.entries[name] = &mirrored[T]{rec: rec, etag: etag, listETag: etag}
}

// stale makes the next refresh read name again.
func (m *mirror[T]) stale(name string) {
	if e, ok := m.entries[name]; ok {
		e.listETag = ""
	}
}

func (m *mirror[T]) get(name string) (*mirrored[T], bool) {
	e, ok := m.entries[name]
	return e, ok
}

// names returns the mirrored names, sorted.
func (m *mirror[T]) names() []string {
	out := make([]string, 0, len(m.entries))
	for name := range m.entries {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// all returns the mirrored records in name order.
func (m *mirror[T]) all() []T {
	names := m.names()
	out := make([]T, len(names))
	for i, name := range names {
		out[i] = m.entries[name].rec
	}
	return out
}
