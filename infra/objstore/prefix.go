package objstore

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// WithPrefix returns a Store that keeps every key of its caller under
// prefix in s: key k is stored as prefix + "/" + k, List lists only below
// prefix and yields keys without it, and every Attrs carries the caller's
// key. Several deployments can so share one bucket without seeing each
// other's keys. A trailing "/" of prefix is ignored; an empty prefix
// returns s itself. A prefix that is not a valid key (ValidateKey) is
// refused with an error wrapping ErrInvalidKey.
//
// Keys are checked before they are prefixed, so a key that is invalid on
// its own ("", "../x") stays invalid below any prefix; a key valid on its
// own may still be refused by s if the prefix makes it longer than
// MaxKeyLen. The returned Store keeps every guarantee of s and is safe for
// concurrent use if s is.
func WithPrefix(s Store, prefix string) (Store, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return s, nil
	}
	if err := ValidateKey(prefix); err != nil {
		return nil, fmt.Errorf("objstore: prefix: %w", err)
	}
	return prefixed{s: s, prefix: prefix + "/"}, nil
}

type prefixed struct {
	s      Store
	prefix string // ends in "/"
}

// key validates key and returns it under the prefix.
func (p prefixed) key(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return p.prefix + key, nil
}

func (p prefixed) Get(ctx context.Context, key string) (Object, error) {
	full, err := p.key(key)
	if err != nil {
		return Object{}, err
	}
	o, err := p.s.Get(ctx, full)
	if err != nil {
		return Object{}, err
	}
	o.Key = key
	return o, nil
}

func (p prefixed) GetIfNoneMatch(ctx context.Context, key, etag string) (Object, error) {
	full, err := p.key(key)
	if err != nil {
		return Object{}, err
	}
	o, err := p.s.GetIfNoneMatch(ctx, full, etag)
	if err != nil {
		return Object{}, err
	}
	o.Key = key
	return o, nil
}

func (p prefixed) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	full, err := p.key(key)
	if err != nil {
		return nil, err
	}
	return p.s.GetRange(ctx, full, off, n)
}

func (p prefixed) Head(ctx context.Context, key string) (Attrs, error) {
	full, err := p.key(key)
	if err != nil {
		return Attrs{}, err
	}
	a, err := p.s.Head(ctx, full)
	if err != nil {
		return Attrs{}, err
	}
	a.Key = key
	return a, nil
}

func (p prefixed) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	full, err := p.key(key)
	if err != nil {
		return "", err
	}
	return p.s.PutIfAbsent(ctx, full, body, meta)
}

func (p prefixed) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	full, err := p.key(key)
	if err != nil {
		return "", err
	}
	return p.s.PutIfMatch(ctx, full, body, etag)
}

func (p prefixed) Put(ctx context.Context, key string, body []byte) (string, error) {
	full, err := p.key(key)
	if err != nil {
		return "", err
	}
	return p.s.Put(ctx, full, body)
}

func (p prefixed) List(ctx context.Context, prefix, startAfter string, fn func(Attrs) error) error {
	if err := ValidatePrefix(prefix); err != nil {
		return err
	}
	if startAfter != "" {
		startAfter = p.prefix + startAfter
	}
	return p.s.List(ctx, p.prefix+prefix, startAfter, func(a Attrs) error {
		key, ok := strings.CutPrefix(a.Key, p.prefix)
		if !ok {
			return nil // cannot happen: the listing named the prefix
		}
		a.Key = key
		return fn(a) // ErrStopList included: the inner List ends on it
	})
}

func (p prefixed) Delete(ctx context.Context, key string) error {
	full, err := p.key(key)
	if err != nil {
		return err
	}
	return p.s.Delete(ctx, full)
}
