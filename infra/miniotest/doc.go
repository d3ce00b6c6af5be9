// Package miniotest runs a real MinIO server for tests: the pinned binary
// that `make test` builds, on a free loopback port with a fresh data
// directory.
//
// One server per test binary is the usual shape:
//
//	func TestMain(m *testing.M) { os.Exit(miniotest.RunMain(m)) }
//
//	func TestSomething(t *testing.T) {
//		store, err := miniotest.Get(t).NewStore(t.Context(), "bucket", t.Name())
//		...
//	}
//
// A missing binary or a server that does not come up fails the tests that
// need it, with the reason and the fix; nothing is skipped.
//
// Environment: CAIRN_MINIO_BIN names the binary (default
// $HOME/.cache/cairn/minio-7aac2a2c5b7c/minio, where `make minio` puts it);
// CAIRN_MINIO_DIR where data directories go (default /dev/shm if writable,
// else the system temporary directory).
//
// A Server is safe for concurrent use; Kill and Restart must not race with
// each other.
package miniotest
