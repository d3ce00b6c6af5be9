package objstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/cairnlog/cairn/infra/objstore"
)

// TestObserveReportsEveryCall: each Store method is reported once, with its
// operation, key, body bytes and error, and its result passed through.
func TestObserveReportsEveryCall(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var got []objstore.Request
	s := objstore.Observe(objstore.NewMemory(), func(r objstore.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r)
	})
	etag, err := s.PutIfAbsent(ctx, "a", []byte("12345"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutIfMatch(ctx, "a", []byte("123"), etag); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if obj, err := s.Get(ctx, "a"); err != nil || string(obj.Body) != "123" {
		t.Fatalf("get: %q %v", obj.Body, err)
	}
	if _, err := s.Get(ctx, "none"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("get of a missing key: %v", err)
	}
	obj, err := s.GetIfNoneMatch(ctx, "a", etag) // the ETag PutIfMatch replaced
	if err != nil || string(obj.Body) != "123" {
		t.Fatalf("get-if-none-match of a changed object: %q %v", obj.Body, err)
	}
	if _, err := s.GetIfNoneMatch(ctx, "a", obj.ETag); !errors.Is(err, objstore.ErrNotModified) {
		t.Fatalf("get-if-none-match of an unchanged object: %v", err)
	}
	if _, err := s.Head(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	r, err := s.GetRange(ctx, "a", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := s.List(ctx, "", "", func(objstore.Attrs) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		op    objstore.Op
		key   string
		bytes int64
		err   error
	}{
		{objstore.OpPutIfAbsent, "a", 5, nil}, {objstore.OpPutIfMatch, "a", 3, nil}, {objstore.OpPut, "b", 1, nil},
		{objstore.OpGet, "a", 3, nil}, {objstore.OpGet, "none", 0, objstore.ErrNotFound},
		{objstore.OpGetIfNoneMatch, "a", 3, nil}, {objstore.OpGetIfNoneMatch, "a", 0, objstore.ErrNotModified}, {objstore.OpHead, "b", 0, nil},
		{objstore.OpGetRange, "a", 0, nil}, {objstore.OpList, "", 0, nil}, {objstore.OpDelete, "b", 0, nil},
	}
	if len(got) != len(want) {
		t.Fatalf("%d requests reported, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Op != w.op || g.Key != w.key || g.Bytes != w.bytes || !errors.Is(g.Err, w.err) || (w.err == nil) != (g.Err == nil) {
			t.Errorf("request %d: %v %q %d bytes err %v, want %v %q %d bytes err %v", i, g.Op, g.Key, g.Bytes, g.Err, w.op, w.key, w.bytes, w.err)
		}
	}
}
