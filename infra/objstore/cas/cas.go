package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/infra/backoff"
	"github.com/cairnlog/cairn/infra/objstore"
)

// Sentinel errors.
var (
	// ErrUnchanged, returned by a Decide function together with the value to
	// report, ends Update without a write: the record already says what the
	// caller wants.
	ErrUnchanged = errors.New("cas: unchanged")
	// ErrOutcomeUnknown: Update stopped (its context ended, or it ran out of
	// attempts, or decide refused) while a write it sent may still land: no
	// read showed it, and the record still has the version that write was
	// conditional on. Update wraps it beside the cause.
	ErrOutcomeUnknown = errors.New("cas: write outcome unknown")
)

// Record is one version of a record: its decoded value and ETag. Exists is
// false when there is no record (Value is then the zero value).
type Record[T any] struct {
	Value  T
	ETag   string
	Exists bool
}

// Codec turns a record's value into the bytes stored and back. Encode must
// give different bytes for different versions (records carry a version
// number that every write raises): Update recognises its own writes by them.
type Codec[T any] struct {
	Encode func(T) ([]byte, error)
	Decode func([]byte) (T, error)
}

// Policy says how hard Update tries.
type Policy struct {
	// Timeout bounds each GET and PUT. It must be positive.
	Timeout time.Duration
	// Settle bounds the read that settles a write of unknown outcome once
	// ctx has ended or the attempts ran out (retried within it). Default
	// Timeout.
	Settle time.Duration
	// MaxAttempts bounds the rounds of one Update: each is a read (or
	// From), a decision and at most one write. 0 means until ctx ends.
	MaxAttempts int
	// Backoff is the pause between rounds.
	Backoff backoff.Policy
}

// Decide computes the next value of a record from the current one (cur.Exists
// is false when there is none). It must do no I/O and depend only on cur,
// the caller's intent and a clock reading: Update calls it again after every
// lost race or write of unknown outcome, on what it read then. It returns
// ErrUnchanged (with the value Update should report) to write nothing, any
// other error to stop. A deadline for the whole update is better a deadline
// of ctx than a check in Decide: then no write goes out after it and an
// unsettled write is still read back (rule 4 of Update).
type Decide[T any] func(cur Record[T]) (T, error)

// An Option adds to one Update.
type Option[T any] func(*update[T])

// From makes the first round decide on rec, the record as the caller last
// read it, instead of reading it again: one request fewer when the caller
// has just read it. A stale rec costs a lost race, never a wrong write.
func From[T any](rec Record[T]) Option[T] {
	return func(u *update[T]) { u.from = &rec }
}

// Landed recognises the caller's own write inside a record that other
// writers may have changed since (say, by an ID the write put there).
// Update consults it, beside comparing bytes, only after one of its writes
// had an unknown outcome; when it reports true, Update returns the value
// of its latest write (with an empty ETag unless the record holds exactly
// those bytes).
func Landed[T any](landed func(cur Record[T]) bool) Option[T] {
	return func(u *update[T]) { u.landed = landed }
}

// OnUnknown has Update call f each time one of its writes gets no answer
// (its outcome is unknown), before it settles it. It is for a caller
// whose record may be deleted: a write that landed and was then deleted
// leaves nothing any read could recognise (rule 3 of Update takes it for
// a lost race), so only the caller, told it was sent, can answer that its
// change may have been made.
func OnUnknown[T any](f func()) Option[T] {
	return func(u *update[T]) { u.onUnknown = f }
}

type update[T any] struct {
	store     objstore.Store
	key       string
	codec     Codec[T]
	p         Policy
	decide    Decide[T]
	from      *Record[T]
	landed    func(Record[T]) bool
	onUnknown func()
	pending   []sent[T] // writes whose outcome is unknown, oldest first
}

// sent is a write whose reply never came.
type sent[T any] struct {
	value  T
	body   []byte
	create bool   // PutIfAbsent: it can land only while there is no record
	etag   string // PutIfMatch: it can land only while the record has this ETag
}

// Update changes the record at key by compare-and-swap: it reads the record
// (GET, with its ETag), lets decide compute the next value, and writes it
// with PutIfAbsent when there was none or PutIfMatch on the ETag read, until
// a write succeeds, decide ends it (ErrUnchanged or another error), or it
// gives up. It returns the record as stored.
//
// A lost race (ErrExists, ErrConflict) and a failed read are retried after a
// pause: read, decide again. A write whose outcome is unknown (an error
// objstore.IsRetryable accepts, or any error once ctx has ended: the request
// may have been applied) is never resent blindly; Update settles it by the
// policy below, which every record of Cairn relies on (docs/protocol.md,
// "Records"):
//
//  1. Every read after such a write looks for it first: a record holding
//     exactly its bytes (or one Landed accepts) means it landed, and Update
//     returns it without deciding again.
//  2. Otherwise decide runs on what was read and the new decision is sent,
//     conditional on the ETag read. If the record still has the version the
//     lost write was conditional on, that write and the new one are
//     conditional on the same thing: at most one of them lands, and a later
//     read recognises either. If the record has moved on, the lost write can
//     no longer land at all.
//  3. A write that landed and was then overwritten by another writer before
//     any read saw it is taken for a lost race: decide runs on what
//     replaced it. Decisions must therefore be idempotent on the state they
//     read (carry an ID, or see that the record already says what they
//     want), or the caller passes Landed.
//  4. When ctx ends or the attempts run out with a write still unsettled,
//     Update makes one more read, detached from ctx and bounded by
//     Policy.Settle, so that what it reports is true: the write landed
//     (success), can no longer land (the cause alone), or may still land
//     (the cause wrapped with ErrOutcomeUnknown).
//
// No write is sent once ctx has ended. Errors from decide are returned as
// they are (with ErrOutcomeUnknown beside them when a write may still land);
// store errors as the store reported them.
func Update[T any](ctx context.Context, store objstore.Store, key string, codec Codec[T], p Policy, decide Decide[T], opts ...Option[T]) (Record[T], error) {
	if p.Timeout <= 0 {
		return Record[T]{}, fmt.Errorf("cas: update %s: request timeout %v must be positive", key, p.Timeout)
	}
	if p.Settle <= 0 {
		p.Settle = p.Timeout
	}
	u := &update[T]{store: store, key: key, codec: codec, p: p, decide: decide}
	for _, o := range opts {
		o(u)
	}
	return u.run(ctx)
}

func (u *update[T]) run(ctx context.Context) (Record[T], error) {
	pauses := u.p.Backoff.Start()
	var lastErr error
	for attempt := 1; u.p.MaxAttempts <= 0 || attempt <= u.p.MaxAttempts; attempt++ {
		if attempt > 1 {
			if err := pauses.Wait(ctx); err != nil {
				return u.stop(ctx, err)
			}
		}
		var cur Record[T]
		if u.from != nil {
			cur, u.from = *u.from, nil
		} else {
			rec, body, err := u.read(ctx)
			switch {
			case ctx.Err() != nil:
				return u.stop(ctx, ctx.Err())
			case objstore.IsRetryable(err):
				lastErr = err
				continue
			case err != nil:
				return Record[T]{}, err
			}
			if got, ok := u.ours(rec, body); ok {
				return got, nil
			}
			cur = rec
		}
		if ctx.Err() != nil {
			return u.stop(ctx, ctx.Err()) // no decision, and so no write, after ctx ended
		}
		next, err := u.decide(cur)
		if errors.Is(err, ErrUnchanged) {
			return Record[T]{Value: next, ETag: cur.ETag, Exists: cur.Exists}, nil
		}
		if err != nil {
			if u.mayLand(cur) {
				return Record[T]{}, fmt.Errorf("%w (%w: an earlier write may still land)", err, ErrOutcomeUnknown)
			}
			return Record[T]{}, err
		}
		body, err := u.codec.Encode(next)
		if err != nil {
			return Record[T]{}, fmt.Errorf("cas: encode %s: %w", u.key, err)
		}
		etag, err := u.write(ctx, cur, body)
		switch {
		case err == nil:
			return Record[T]{Value: next, ETag: etag, Exists: true}, nil
		case errors.Is(err, objstore.ErrExists) || errors.Is(err, objstore.ErrConflict):
			lastErr = err // another writer won this round: read and decide again
		case objstore.IsRetryable(err) || ctx.Err() != nil:
			u.pending = append(u.pending, sent[T]{value: next, body: body, create: !cur.Exists, etag: cur.ETag})
			if u.onUnknown != nil {
				u.onUnknown()
			}
			lastErr = err
		default:
			return Record[T]{}, err
		}
	}
	return u.stop(ctx, fmt.Errorf("gave up after %d attempts: %w", u.p.MaxAttempts, lastErr))
}

// read returns the record at key and the bytes it was decoded from.
func (u *update[T]) read(ctx context.Context) (Record[T], []byte, error) {
	rctx, cancel := context.WithTimeout(ctx, u.p.Timeout)
	defer cancel()
	obj, err := u.store.Get(rctx, u.key)
	if errors.Is(err, objstore.ErrNotFound) {
		return Record[T]{}, nil, nil
	}
	if err != nil {
		return Record[T]{}, nil, err
	}
	v, err := u.codec.Decode(obj.Body)
	if err != nil {
		return Record[T]{}, nil, err
	}
	return Record[T]{Value: v, ETag: obj.ETag, Exists: true}, obj.Body, nil
}

// write makes one conditional write of body over cur.
func (u *update[T]) write(ctx context.Context, cur Record[T], body []byte) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, u.p.Timeout)
	defer cancel()
	if !cur.Exists {
		return u.store.PutIfAbsent(wctx, u.key, body, nil)
	}
	return u.store.PutIfMatch(wctx, u.key, body, cur.ETag)
}

// ours reports whether rec shows one of the writes of unknown outcome
// landed (rule 1), and what Update then returns.
func (u *update[T]) ours(rec Record[T], body []byte) (Record[T], bool) {
	if len(u.pending) == 0 || !rec.Exists {
		return Record[T]{}, false
	}
	for _, s := range u.pending {
		if bytes.Equal(body, s.body) {
			return rec, true
		}
	}
	if u.landed != nil && u.landed(rec) {
		return Record[T]{Value: u.pending[len(u.pending)-1].value, Exists: true}, true
	}
	return Record[T]{}, false
}

// mayLand reports whether a write of unknown outcome can still land on cur:
// it was conditional on exactly cur's version.
func (u *update[T]) mayLand(cur Record[T]) bool {
	for _, s := range u.pending {
		if (s.create && !cur.Exists) || (!s.create && cur.Exists && s.etag == cur.ETag) {
			return true
		}
	}
	return false
}

// stop ends Update with cause (ctx's error, or giving up), after settling
// any write of unknown outcome with a read detached from ctx (rule 4).
func (u *update[T]) stop(ctx context.Context, cause error) (Record[T], error) {
	if len(u.pending) == 0 {
		return Record[T]{}, cause
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.p.Settle)
	defer cancel()
	pauses := u.p.Backoff.Start()
	for {
		rec, body, err := u.read(ctx)
		if err == nil {
			if got, ok := u.ours(rec, body); ok {
				return got, nil
			}
			if !u.mayLand(rec) {
				return Record[T]{}, cause
			}
			return Record[T]{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, cause)
		}
		if !objstore.IsRetryable(err) || pauses.Wait(ctx) != nil {
			return Record[T]{}, fmt.Errorf("%w (the record cannot be read: %v): %w", ErrOutcomeUnknown, err, cause)
		}
	}
}
