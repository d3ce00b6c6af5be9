package coordinator_test

import (
	"os"
	"testing"

	"github.com/cairnlog/cairn/infra/miniotest"
)

// TestMain starts one real MinIO for the package's tests (the harness
// fails, never skips, the tests that need it when it cannot start).
func TestMain(m *testing.M) { os.Exit(miniotest.RunMain(m)) }
