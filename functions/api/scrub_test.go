package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/infra/objstore"
)

// breakableStore fails every call with fail's error once broken.
type breakableStore struct {
	objstore.Store
	fail atomic.Pointer[error]
}

func (s *breakableStore) err() error {
	if p := s.fail.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *breakableStore) Get(ctx context.Context, key string) (objstore.Object, error) {
	if err := s.err(); err != nil {
		return objstore.Object{}, err
	}
	return s.Store.Get(ctx, key)
}

func (s *breakableStore) GetIfNoneMatch(ctx context.Context, key, etag string) (objstore.Object, error) {
	if err := s.err(); err != nil {
		return objstore.Object{}, err
	}
	return s.Store.GetIfNoneMatch(ctx, key, etag)
}

func (s *breakableStore) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	if err := s.err(); err != nil {
		return "", err
	}
	return s.Store.PutIfAbsent(ctx, key, body, meta)
}

func (s *breakableStore) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	if err := s.err(); err != nil {
		return "", err
	}
	return s.Store.PutIfMatch(ctx, key, body, etag)
}

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStoreFailuresAnswerWithoutInternals: when the store fails, the
// answer is the right 5xx with a generic message and a reference; the
// store's own words (keys, endpoints, bucket names) go only to the log,
// under that reference.
func TestStoreFailuresAnswerWithoutInternals(t *testing.T) {
	const marker = "s3.internal.example:9000/bucket-7/wal/secret-layout"
	cases := []struct {
		name  string
		err   error
		codes []string // the writer may stop on the failure itself (unavailable) or on the lease running out meanwhile (outcome unknown)
		// causeInLog: the request's own error carries the store's text (a
		// writer that gave up on retries logs the store's text on its own).
		causeInLog bool
	}{
		{"retryable", fmt.Errorf("put %s: %w", marker, objstore.ErrTransient), []string{wire.CodeUnavailable, wire.CodeOutcomeUnknown}, false},
		{"unexpected", fmt.Errorf("put %s: access denied", marker), []string{wire.CodeInternal}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs lockedBuffer
			cfg := testConfig(t)
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			store := &breakableStore{Store: objstore.NewMemory()}
			ts := newTestServer(t, cfg, store)
			body := []byte(`{"messages":[{"vchannel":"v","payload":"aGk="}]}`)
			if r := ts.do("POST", "/v1/pchannels/p0/append", wire.ContentTypeJSON, body); r.status != http.StatusOK {
				t.Fatalf("append before the failure: %d %s", r.status, r.body)
			}
			store.fail.Store(&tc.err)
			var r response
			for range 3 { // the open writer fails on its first PUT; later calls meet the store again
				if r = ts.do("POST", "/v1/pchannels/p0/append", wire.ContentTypeJSON, body); r.status >= 500 {
					break
				}
			}
			var e struct{ Code, Message, Ref string }
			if err := json.Unmarshal(r.body, &e); err != nil {
				t.Fatalf("answer %d %s: %v", r.status, r.body, err)
			}
			if e.Code == wire.CodeCorrupt || r.status < 500 {
				t.Fatalf("answer %d %s, want a 5xx", r.status, r.body)
			}
			ok := false
			for _, c := range tc.codes {
				ok = ok || e.Code == c
			}
			if !ok {
				t.Fatalf("code %q (status %d), want one of %v", e.Code, r.status, tc.codes)
			}
			if bytes.Contains(r.body, []byte("secret-layout")) || bytes.Contains(r.body, []byte("bucket-7")) {
				t.Fatalf("answer carries the store's words: %s", r.body)
			}
			if e.Ref == "" || !strings.Contains(e.Message, e.Ref) {
				t.Fatalf("answer %s: want a reference in ref and in the message", r.body)
			}
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "ref="+e.Ref) {
					line = l
				}
			}
			if !strings.Contains(line, "cause=") || (tc.causeInLog && !strings.Contains(line, marker)) {
				t.Fatalf("no log line with ref %s and the cause; logs:\n%s", e.Ref, logs.String())
			}
		})
	}
}

// TestClassifyBroadcastBusy: a broadcast run held elsewhere is a 503 to
// retry, never a 500.
func TestClassifyBroadcastBusy(t *testing.T) {
	e := classify(fmt.Errorf("broadcast b: %w", coordinator.ErrBroadcastBusy))
	if e.status != http.StatusServiceUnavailable || e.Code != wire.CodeUnavailable || e.retryAfter <= 0 {
		t.Fatalf("busy broadcast answered %d %s (retry after %v)", e.status, e.Code, e.retryAfter)
	}
}
