package coordinator_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/objstore"
)

// TestMain starts one real MinIO for the package's tests (the harness
// fails, never skips, the tests that need it when it cannot start).
func TestMain(m *testing.M) { os.Exit(miniotest.RunMain(m)) }

var minioSeq atomic.Int64

// minioStore returns a store on the package's MinIO under a prefix of its
// own, so tests never see each other's objects.
func minioStore(tb testing.TB) objstore.Store {
	tb.Helper()
	st, err := miniotest.Get(tb).NewStore(context.Background(), "coordinator", fmt.Sprintf("t%d-%d", os.Getpid(), minioSeq.Add(1)))
	if err != nil {
		tb.Fatalf("minio store: %v", err)
	}
	return st
}
