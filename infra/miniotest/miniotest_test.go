package miniotest_test

import (
	"os"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/objstore"
)

func TestMain(m *testing.M) { os.Exit(miniotest.RunMain(m)) }

// TestKillRestart is the outage a later test needs: writes fail (retryably)
// while the server is down, and data written before survives the restart.
func TestKillRestart(t *testing.T) {
	ctx := t.Context()
	srv := miniotest.Get(t)
	s, err := srv.NewStore(ctx, "outage", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutIfAbsent(ctx, "before", []byte("kept"), nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "before"); !objstore.IsRetryable(err) {
		t.Fatalf("Get while MinIO is down: err = %v, want retryable", err)
	}
	if _, err := s.PutIfAbsent(ctx, "during", []byte("x"), nil); !objstore.IsRetryable(err) {
		t.Fatalf("PutIfAbsent while MinIO is down: err = %v, want retryable", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	o, err := s.Get(ctx, "before")
	if err != nil || string(o.Body) != "kept" {
		t.Fatalf("Get after restart: %q, %v", o.Body, err)
	}
}

func TestMissingBinaryExplainsTheFix(t *testing.T) {
	t.Setenv(miniotest.BinaryEnv, "/nonexistent/minio")
	_, err := miniotest.Start()
	if err == nil || !strings.Contains(err.Error(), "make test") {
		t.Fatalf("Start without a binary: err = %v, want one that says to run make test", err)
	}
}
