package s3store_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/s3store"
)

// fakeS3 answers every request with one S3 error and counts requests.
func fakeS3(t *testing.T, status int, code string) (*s3store.Store, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message></Error>`, code)
	}))
	t.Cleanup(srv.Close)
	s, err := s3store.New(t.Context(), s3store.Config{
		Endpoint: srv.URL, Region: "us-east-1", Bucket: "b", PathStyle: true,
		AccessKey: "x", SecretKey: "y", MaxAttempts: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, &n
}

// TestErrorMapping pins how S3 answers become objstore errors, including
// the ones MinIO never sends (409 ConditionalRequestConflict, SlowDown).
func TestErrorMapping(t *testing.T) {
	type op func(s *s3store.Store) error
	pia := func(s *s3store.Store) error { _, err := s.PutIfAbsent(t.Context(), "k", []byte("x"), nil); return err }
	pim := func(s *s3store.Store) error { _, err := s.PutIfMatch(t.Context(), "k", []byte("x"), `"e"`); return err }
	get := func(s *s3store.Store) error { _, err := s.Get(t.Context(), "k"); return err }
	for _, tc := range []struct {
		name   string
		status int
		code   string
		op     op
		want   error
	}{
		{"412 on put-if-absent", 412, "PreconditionFailed", pia, objstore.ErrExists},
		{"412 on put-if-match", 412, "PreconditionFailed", pim, objstore.ErrConflict},
		{"404 on put-if-match", 404, "NoSuchKey", pim, objstore.ErrConflict},
		{"404 on get", 404, "NoSuchKey", get, objstore.ErrNotFound},
		{"409 on put-if-match", 409, "ConditionalRequestConflict", pim, objstore.ErrTransient},
		{"503 SlowDown on put-if-absent", 503, "SlowDown", pia, objstore.ErrTransient},
		{"500 on get", 500, "InternalError", get, objstore.ErrTransient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := fakeS3(t, tc.status, tc.code)
			if err := tc.op(s); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("403 is permanent", func(t *testing.T) {
		s, _ := fakeS3(t, 403, "AccessDenied")
		err := get(s)
		if err == nil || objstore.IsRetryable(err) || errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("err = %v, want a permanent error", err)
		}
	})
}

// TestConditionalPutsAreSentOnce checks the retry policy: the SDK retries
// idempotent requests, never a conditional PUT, whose first attempt may
// have landed.
func TestConditionalPutsAreSentOnce(t *testing.T) {
	ctx := t.Context()
	s, n := fakeS3(t, 503, "ServiceUnavailable")
	if _, err := s.PutIfAbsent(ctx, "k", []byte("x"), nil); !objstore.IsRetryable(err) || n.Load() != 1 {
		t.Fatalf("PutIfAbsent: err = %v after %d requests, want retryable after 1", err, n.Load())
	}
	n.Store(0)
	if _, err := s.PutIfMatch(ctx, "k", []byte("x"), `"e"`); !objstore.IsRetryable(err) || n.Load() != 1 {
		t.Fatalf("PutIfMatch: err = %v after %d requests, want retryable after 1", err, n.Load())
	}
	n.Store(0)
	if _, err := s.Put(ctx, "k", []byte("x")); !objstore.IsRetryable(err) || n.Load() != 2 {
		t.Fatalf("Put: err = %v after %d requests, want retryable after MaxAttempts=2", err, n.Load())
	}
}
