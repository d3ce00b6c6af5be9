package s3store_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/objstoretest"
	"github.com/cairnlog/cairn/infra/objstore/s3store"
	"github.com/cairnlog/cairn/infra/testkit"
)

func TestMain(m *testing.M) { os.Exit(miniotest.RunMain(m)) }

const bucket = "cairn-test"

// newStore is a fresh, empty prefix of the bucket.
func newStore(t *testing.T) *s3store.Store { return testkit.MinIOStore(t, bucket) }

func TestAcceptance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store { return newStore(t) })
}

// TestPrefixAcceptance runs the suite through objstore.WithPrefix over
// MinIO: the wrapper, not the adapter, owns the prefix.
func TestPrefixAcceptance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		s, err := objstore.WithPrefix(newStore(t), "tenant/a")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestProbe(t *testing.T) {
	if err := objstore.Probe(t.Context(), newStore(t), "probe/"); err != nil {
		t.Fatalf("Probe against MinIO: %v", err)
	}
}

// TestPrefixIsolation checks that the prefix is applied on write and
// stripped on List, and that stores with different prefixes do not see
// each other's keys.
func TestPrefixIsolation(t *testing.T) {
	ctx := t.Context()
	srv := miniotest.Get(t)
	a, err := srv.NewStore(ctx, bucket, "iso/a/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := srv.NewStore(ctx, bucket, "iso/b")
	if err != nil {
		t.Fatal(err)
	}
	root, err := srv.NewStore(ctx, bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "k", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("store b sees store a's key: %v", err)
	}
	if o, err := root.Get(ctx, "iso/a/k"); err != nil || string(o.Body) != "a" {
		t.Fatalf("unprefixed view of iso/a/k: %q, %v", o.Body, err)
	}
	var keys []string
	if err := a.List(ctx, "", "", func(at objstore.Attrs) error { keys = append(keys, at.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "k" {
		t.Fatalf("List under prefix = %q, want [k]", keys)
	}
}

// TestUnreachable checks that a store nobody answers for fails with a
// retryable error.
func TestUnreachable(t *testing.T) {
	ctx := t.Context()
	s, err := s3store.New(ctx, s3store.Config{
		Endpoint: "http://127.0.0.1:1", Bucket: "b", PathStyle: true,
		AccessKey: "x", SecretKey: "y", MaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutIfAbsent(ctx, "k", []byte("x"), nil); !objstore.IsRetryable(err) {
		t.Fatalf("PutIfAbsent to a closed port: err = %v, want retryable", err)
	}
	if _, err := s.Get(ctx, "k"); !objstore.IsRetryable(err) {
		t.Fatalf("Get from a closed port: err = %v, want retryable", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(canceled, "k"); objstore.IsRetryable(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a canceled context: err = %v, want Canceled, not retryable", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg s3store.Config
		ok  bool
	}{
		{s3store.Config{Bucket: "b"}, true},
		{s3store.Config{Bucket: "b", Prefix: "cairn/prod/"}, true},
		{s3store.Config{}, false},
		{s3store.Config{Bucket: "b", Prefix: "/abs"}, false},
		{s3store.Config{Bucket: "b", Prefix: "a/../b"}, false},
		{s3store.Config{Bucket: "b", AccessKey: "x"}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("CAIRN_S3_ENDPOINT", "http://minio:9000")
	t.Setenv("CAIRN_S3_BUCKET", "logs")
	t.Setenv("CAIRN_S3_PREFIX", "cairn")
	c := s3store.ConfigFromEnv(os.Getenv)
	if c.Endpoint != "http://minio:9000" || c.Bucket != "logs" || c.Prefix != "cairn" || !c.PathStyle {
		t.Fatalf("ConfigFromEnv = %+v", c)
	}
	t.Setenv("CAIRN_S3_ENDPOINT", "")
	if c := s3store.ConfigFromEnv(os.Getenv); c.PathStyle {
		t.Fatal("path-style without an endpoint")
	}
}

func TestMetadataMustBeASCII(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	for _, meta := range []map[string]string{{"k": "caf\u00e9"}, {"a b": "v"}, {"k": "line\nbreak"}, {"": "v"}} {
		if _, err := s.PutIfAbsent(ctx, "meta", []byte("x"), meta); err == nil || objstore.IsRetryable(err) {
			t.Errorf("PutIfAbsent with metadata %q: err = %v, want a permanent error", meta, err)
		}
	}
	if _, err := s.Head(ctx, "meta"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("refused metadata still created the object: %v", err)
	}
}
