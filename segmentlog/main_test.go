package segmentlog_test

import (
	"os"
	"testing"

	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
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

// onStores runs test on a memory store and on MinIO, as subtests.
func onStores(t *testing.T, test func(t *testing.T, store objstore.Store)) {
	t.Run("memory", func(t *testing.T) { test(t, objstore.NewMemory()) })
	t.Run("minio", func(t *testing.T) { test(t, testkit.MinIOStore(t, "segmentlog")) })
}
