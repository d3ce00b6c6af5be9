package coordinator_test

import (
	"context"
	"io"
	"sync"

	"github.com/cairnlog/cairn/infra/objstore"
)

// freezer stops every store call of one node while frozen; on thaw the
// blocked calls go out with no deadline, as a process the OS resumes sends
// what it had queued.
type freezer struct {
	mu sync.Mutex
	ch chan struct{}
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch == nil {
		f.ch = make(chan struct{})
	}
}

func (f *freezer) thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch != nil {
		close(f.ch)
		f.ch = nil
	}
}

func (f *freezer) gate(ctx context.Context) context.Context {
	f.mu.Lock()
	ch := f.ch
	f.mu.Unlock()
	if ch == nil {
		return ctx
	}
	<-ch
	return context.Background()
}

type freezeStore struct {
	objstore.Store
	f *freezer
}

func (s *freezeStore) Get(ctx context.Context, key string) (objstore.Object, error) {
	return s.Store.Get(s.f.gate(ctx), key)
}

func (s *freezeStore) GetIfNoneMatch(ctx context.Context, key, etag string) (objstore.Object, error) {
	return s.Store.GetIfNoneMatch(s.f.gate(ctx), key, etag)
}

func (s *freezeStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	return s.Store.GetRange(s.f.gate(ctx), key, off, n)
}

func (s *freezeStore) Head(ctx context.Context, key string) (objstore.Attrs, error) {
	return s.Store.Head(s.f.gate(ctx), key)
}

func (s *freezeStore) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	return s.Store.PutIfAbsent(s.f.gate(ctx), key, body, meta)
}

func (s *freezeStore) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	return s.Store.PutIfMatch(s.f.gate(ctx), key, body, etag)
}

func (s *freezeStore) Put(ctx context.Context, key string, body []byte) (string, error) {
	return s.Store.Put(s.f.gate(ctx), key, body)
}

func (s *freezeStore) List(ctx context.Context, prefix, startAfter string, fn func(objstore.Attrs) error) error {
	return s.Store.List(s.f.gate(ctx), prefix, startAfter, fn)
}
