// Package infra holds the outer ring of Cairn: the object-store port and its
// adapters (infra/objstore, infra/objstore/s3store), the one CAS-update loop
// every record goes through (infra/objstore/cas), the one retry pause
// (infra/backoff), the MinIO test harness (infra/miniotest), the helpers
// tests share (infra/testkit), the Lambda
// emulator tests run the functions in (infra/lambdaemu, with its test
// helpers in infra/lambdaemu/lambdaemutest), configuration,
// metrics and logging. It is the only part of Cairn that may import the AWS
// SDK; layering_test.go keeps it so.
package infra
