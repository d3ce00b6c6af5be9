package testkit

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/objstore/s3store"
)

// MinIOStore returns a store in bucket on the test binary's MinIO (the one
// miniotest.RunMain started), under a random prefix of its own, so tests
// never see each other's objects. A missing server fails tb (miniotest.Get).
func MinIOStore(tb testing.TB, bucket string) *s3store.Store {
	tb.Helper()
	prefix := "t-" + rand.Text()
	st, err := miniotest.Get(tb).NewStore(context.Background(), bucket, prefix)
	if err != nil {
		tb.Fatalf("minio store %s/%s: %v", bucket, prefix, err)
	}
	return st
}
