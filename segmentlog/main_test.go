package segmentlog_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/objstore"
)

// TestMain starts one real MinIO for the package (the harness fails, never
// skips, when it cannot). A child process a test starts (helperEnv set)
// talks to its parent's MinIO and starts none.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(m.Run())
	}
	os.Exit(miniotest.RunMain(m))
}

var minioSeq atomic.Int64

// minioStore returns a store on the package's MinIO under a prefix of its
// own, so tests never see each other's objects.
func minioStore(tb testing.TB) objstore.Store {
	tb.Helper()
	srv := miniotest.Get(tb)
	st, err := srv.NewStore(context.Background(), "segmentlog", fmt.Sprintf("t%d-%d", os.Getpid(), minioSeq.Add(1)))
	if err != nil {
		tb.Fatalf("minio store: %v", err)
	}
	return st
}

// onStores runs test on a memory store and on MinIO, as subtests.
func onStores(t *testing.T, test func(t *testing.T, store objstore.Store)) {
	t.Run("memory", func(t *testing.T) { test(t, objstore.NewMemory()) })
	t.Run("minio", func(t *testing.T) { test(t, minioStore(t)) })
}
