package objstore

import (
	"context"
	"io"
	"time"
)

// Request describes one call an observed store passed on (Observe).
type Request struct {
	Op  Op
	Key string // the key; the prefix for List
	// Bytes is the body read (Get, GetIfNoneMatch: 0 when not modified) or written (Put, PutIfAbsent,
	// PutIfMatch); 0 for the others (GetRange's reader is the caller's).
	Bytes    int64
	Duration time.Duration
	Err      error
}

// Observe returns a Store that passes every call to s and then reports it
// to fn: the one counting wrapper (metrics, request budgets in tests). A
// List is one request however many pages it reads. fn runs on the caller's
// goroutine and must be safe for concurrent use; the returned Store is
// safe for concurrent use if s is.
func Observe(s Store, fn func(Request)) Store { return observed{s, fn} }

type observed struct {
	s  Store
	fn func(Request)
}

func (o observed) report(op Op, key string, n int64, start time.Time, err error) {
	o.fn(Request{Op: op, Key: key, Bytes: n, Duration: time.Since(start), Err: err})
}

func (o observed) Get(ctx context.Context, key string) (Object, error) {
	start := time.Now()
	obj, err := o.s.Get(ctx, key)
	o.report(OpGet, key, int64(len(obj.Body)), start, err)
	return obj, err
}

func (o observed) GetIfNoneMatch(ctx context.Context, key, etag string) (Object, error) {
	start := time.Now()
	obj, err := o.s.GetIfNoneMatch(ctx, key, etag)
	o.report(OpGetIfNoneMatch, key, int64(len(obj.Body)), start, err)
	return obj, err
}

func (o observed) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	start := time.Now()
	r, err := o.s.GetRange(ctx, key, off, n)
	o.report(OpGetRange, key, 0, start, err)
	return r, err
}

func (o observed) Head(ctx context.Context, key string) (Attrs, error) {
	start := time.Now()
	a, err := o.s.Head(ctx, key)
	o.report(OpHead, key, 0, start, err)
	return a, err
}

func (o observed) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	start := time.Now()
	etag, err := o.s.PutIfAbsent(ctx, key, body, meta)
	o.report(OpPutIfAbsent, key, int64(len(body)), start, err)
	return etag, err
}

func (o observed) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	start := time.Now()
	next, err := o.s.PutIfMatch(ctx, key, body, etag)
	o.report(OpPutIfMatch, key, int64(len(body)), start, err)
	return next, err
}

func (o observed) Put(ctx context.Context, key string, body []byte) (string, error) {
	start := time.Now()
	etag, err := o.s.Put(ctx, key, body)
	o.report(OpPut, key, int64(len(body)), start, err)
	return etag, err
}

func (o observed) List(ctx context.Context, prefix, startAfter string, fn func(Attrs) error) error {
	start := time.Now()
	err := o.s.List(ctx, prefix, startAfter, fn)
	o.report(OpList, prefix, 0, start, err)
	return err
}

func (o observed) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := o.s.Delete(ctx, key)
	o.report(OpDelete, key, 0, start, err)
	return err
}
