package objstore_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/objstoretest"
)

func TestPrefixAcceptance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		s, err := objstore.WithPrefix(objstore.NewMemory(), "tenant/a/")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestPrefixKeys: keys land in the inner store as prefix + "/" + key, byte
// for byte; List sees only the prefix's keys, without it; a key beside
// the prefix that shares its bytes ("tenant/ab") stays out.
func TestPrefixKeys(t *testing.T) {
	ctx := t.Context()
	mem := objstore.NewMemory()
	a, err := objstore.WithPrefix(mem, "tenant/a")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tenant/ab/x", "tenant/a", "other"} {
		if _, err := mem.Put(ctx, k, []byte("outside")); err != nil {
			t.Fatal(err)
		}
	}
	etag, err := a.PutIfAbsent(ctx, "wal/p1/00000000000000000007", []byte("batch"), map[string]string{"term": "7"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := mem.Get(ctx, "tenant/a/wal/p1/00000000000000000007")
	if err != nil || string(raw.Body) != "batch" || raw.ETag != etag {
		t.Fatalf("inner store at the prefixed key: %q (ETag %s), %v; want the batch (ETag %s)", raw.Body, raw.ETag, err, etag)
	}
	o, err := a.Get(ctx, "wal/p1/00000000000000000007")
	if err != nil || o.Key != "wal/p1/00000000000000000007" || o.Meta["term"] != "7" {
		t.Fatalf("Get through the prefix: key %q meta %v, %v", o.Key, o.Meta, err)
	}
	if h, err := a.Head(ctx, "wal/p1/00000000000000000007"); err != nil || h.Key != "wal/p1/00000000000000000007" {
		t.Fatalf("Head through the prefix: key %q, %v", h.Key, err)
	}
	if _, err := a.GetIfNoneMatch(ctx, "wal/p1/00000000000000000007", etag); !errors.Is(err, objstore.ErrNotModified) {
		t.Fatalf("GetIfNoneMatch through the prefix: %v, want ErrNotModified", err)
	}
	var keys []string
	if err := a.List(ctx, "", "", func(at objstore.Attrs) error { keys = append(keys, at.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"wal/p1/00000000000000000007"}) {
		t.Fatalf("List through the prefix = %q, want only the prefix's key, stripped", keys)
	}
	for _, k := range []string{"", "../x", "a//b"} {
		if _, err := a.Put(ctx, k, nil); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Put(%q) below a prefix: %v, want ErrInvalidKey", k, err)
		}
	}
}

func TestPrefixRefusesBadPrefix(t *testing.T) {
	mem := objstore.NewMemory()
	for _, p := range []string{"/abs", "a/../b", "a//b", "a\x00b", "//"} {
		if _, err := objstore.WithPrefix(mem, p); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("WithPrefix(%q): %v, want ErrInvalidKey", p, err)
		}
	}
	for _, p := range []string{"", "/"} { // a trailing "/" is ignored
		if s, err := objstore.WithPrefix(mem, p); err != nil || s != objstore.Store(mem) {
			t.Errorf("WithPrefix(%q) = %v, %v; want the store itself", p, s, err)
		}
	}
}
