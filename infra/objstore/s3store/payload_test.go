package s3store_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cairnlog/cairn/infra/objstore/s3store"
)

// putRecorder answers every PUT as S3 does and records the payload hash the
// request was signed with (x-amz-content-sha256).
type putRecorder struct {
	mu     sync.Mutex
	hashes []string
}

func (p *putRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	p.mu.Lock()
	p.hashes = append(p.hashes, r.Header.Get("X-Amz-Content-Sha256"))
	p.mu.Unlock()
	w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
	w.WriteHeader(http.StatusOK)
}

func (p *putRecorder) last() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.hashes) == 0 {
		return ""
	}
	return p.hashes[len(p.hashes)-1]
}

// payloadStore is a store of an S3 endpoint at srv, trusting its
// certificate when it serves TLS (through AWS_CA_BUNDLE, as a user would).
func payloadStore(tb testing.TB, srv *httptest.Server) *s3store.Store {
	tb.Helper()
	if srv.TLS != nil {
		ca := filepath.Join(tb.TempDir(), "ca.pem")
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
			tb.Fatal(err)
		}
		tb.Setenv("AWS_CA_BUNDLE", ca)
	}
	s, err := s3store.New(tb.Context(), s3store.Config{
		Endpoint: srv.URL, Bucket: "b", PathStyle: true, AccessKey: "k", SecretKey: "s", Region: "us-east-1",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestPayloadHashOnlyWithoutTLS: over TLS a PUT's body is not hashed for
// the signature (S3 takes an unsigned payload there; the SDK sends a CRC32
// trailer instead), while over plain HTTP (MinIO on loopback) the signature
// covers the body's SHA-256, as S3 requires.
func TestPayloadHashOnlyWithoutTLS(t *testing.T) {
	body := bytes.Repeat([]byte("cairn"), 50_000)
	sum := sha256.Sum256(body)
	for _, tc := range []struct {
		name string
		tls  bool
		want string
	}{
		{"plain HTTP", false, hex.EncodeToString(sum[:])},
		{"TLS", true, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &putRecorder{}
			srv := httptest.NewUnstartedServer(rec)
			if tc.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			s := payloadStore(t, srv)
			if _, err := s.PutIfAbsent(t.Context(), "wal/p0/1", body, map[string]string{"term": "1"}); err != nil {
				t.Fatal(err)
			}
			if got := rec.last(); got != tc.want {
				t.Fatalf("x-amz-content-sha256 %q, want %q", got, tc.want)
			}
		})
	}
}

// BenchmarkPutPayloadHash measures a 1 MiB PutIfAbsent's cost in this
// process (client and the answering endpoint) with the body hashed for the
// signature (plain HTTP) and not (TLS, which adds its own encryption).
func BenchmarkPutPayloadHash(b *testing.B) {
	body := bytes.Repeat([]byte{0x5a}, 1<<20)
	for _, tls := range []bool{false, true} {
		name := map[bool]string{false: "http-hashed", true: "tls-unsigned"}[tls]
		b.Run(name, func(b *testing.B) {
			srv := httptest.NewUnstartedServer(&putRecorder{})
			if tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			s := payloadStore(b, srv)
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := s.PutIfAbsent(b.Context(), "wal/p0/1", body, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
