package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Memory is an in-process Store for unit tests. It keeps every guarantee of
// Store. Safe for concurrent use.
type Memory struct {
	now func() time.Time

	mu      sync.Mutex
	objects map[string]memObject
	seq     uint64 // source of unique ETags
}

type memObject struct {
	body  []byte
	etag  string
	meta  map[string]string
	mtime time.Time
}

// NewMemory returns an empty memory store.
func NewMemory() *Memory {
	return &Memory{now: time.Now, objects: make(map[string]memObject)}
}

func (m *Memory) Get(ctx context.Context, key string) (Object, error) {
	o, err := m.lookup(ctx, key)
	if err != nil {
		return Object{}, err
	}
	return Object{Attrs: o.attrs(key), Body: bytes.Clone(o.body)}, nil
}

func (m *Memory) GetIfNoneMatch(ctx context.Context, key, etag string) (Object, error) {
	o, err := m.lookup(ctx, key)
	if err != nil {
		return Object{}, err
	}
	if etag != "" && o.etag == etag {
		return Object{}, fmt.Errorf("%s: %w", key, ErrNotModified)
	}
	return Object{Attrs: o.attrs(key), Body: bytes.Clone(o.body)}, nil
}

func (m *Memory) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	o, err := m.lookup(ctx, key)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("objstore: get range %s: negative offset %d", key, off)
	}
	if off > int64(len(o.body)) {
		off = int64(len(o.body))
	}
	end := int64(len(o.body))
	if n >= 0 && off+n < end {
		end = off + n
	}
	return io.NopCloser(bytes.NewReader(bytes.Clone(o.body[off:end]))), nil
}

func (m *Memory) Head(ctx context.Context, key string) (Attrs, error) {
	o, err := m.lookup(ctx, key)
	if err != nil {
		return Attrs{}, err
	}
	return o.attrs(key), nil
}

func (m *Memory) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	if err := checkWrite(ctx, key); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[key]; ok {
		return "", fmt.Errorf("put-if-absent %s: %w", key, ErrExists)
	}
	return m.storeLocked(key, body, meta), nil
}

func (m *Memory) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	if err := checkWrite(ctx, key); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok || o.etag != etag {
		return "", fmt.Errorf("put-if-match %s: %w", key, ErrConflict)
	}
	return m.storeLocked(key, body, nil), nil
}

func (m *Memory) Put(ctx context.Context, key string, body []byte) (string, error) {
	if err := checkWrite(ctx, key); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.storeLocked(key, body, nil), nil
}

func (m *Memory) List(ctx context.Context, prefix, startAfter string, fn func(Attrs) error) error {
	if err := ValidatePrefix(prefix); err != nil {
		return err
	}
	m.mu.Lock()
	var page []Attrs
	for k, o := range m.objects {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix && k > startAfter {
			page = append(page, o.attrs(k))
		}
	}
	m.mu.Unlock()
	sort.Slice(page, func(i, j int) bool { return page[i].Key < page[j].Key })
	for _, a := range page {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(a); err != nil {
			if errors.Is(err, ErrStopList) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := checkWrite(ctx, key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, key)
	return nil
}

func (m *Memory) lookup(ctx context.Context, key string) (memObject, error) {
	if err := checkWrite(ctx, key); err != nil {
		return memObject{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return memObject{}, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return o, nil
}

func (m *Memory) storeLocked(key string, body []byte, meta map[string]string) string {
	m.seq++
	etag := strconv.Quote(strconv.FormatUint(m.seq, 16))
	m.objects[key] = memObject{body: bytes.Clone(body), etag: etag, meta: maps.Clone(meta), mtime: m.now()}
	return etag
}

func (o memObject) attrs(key string) Attrs {
	return Attrs{Key: key, Size: int64(len(o.body)), ETag: o.etag, Meta: maps.Clone(o.meta), LastModified: o.mtime}
}

// checkWrite validates the key and the context before any operation.
func checkWrite(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return ValidateKey(key)
}
