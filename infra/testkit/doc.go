// Package testkit holds the helpers Cairn's tests share, beside
// objstoretest (the store acceptance suite and the process model):
//
//   - ScanToTail and Scan read a pchannel to segmentlog.ErrTail, the loop
//     every read-back check needs;
//   - MinIOStore gives a test a store of its own on the test binary's real
//     MinIO (infra/miniotest);
//   - Eventually and EventuallyNil wait for a condition with a deadline,
//     polling, instead of a sleep that hopes the condition holds by then
//     (Within, for a test that accepts either outcome, fails nothing);
//   - Await waits, with a deadline, for a channel a hook closes when the
//     code under test reaches a point (a goroutine parks, a long poll
//     starts waiting), so a test knows it is there instead of sleeping;
//   - LoseFirstReply wraps a store so that one conditional write lands but
//     its caller hears a retryable error, after a hook ran in between.
//
// Usage:
//
//	func TestMain(m *testing.M) { os.Exit(miniotest.RunMain(m)) }
//
//	func TestReadBack(t *testing.T) {
//		store := testkit.MinIOStore(t, "segmentlog")
//		...
//		got := testkit.Scan(t, t.Context(), store, segmentlog.ScannerConfig{PChannel: "p1", From: segmentlog.Earliest()})
//		testkit.Eventually(t, 5*time.Second, "the lease lapses", func() bool { ... })
//	}
//
// The package imports segmentlog, objstore and miniotest, so only tests of
// packages those do not import can use it: segmentlog's external tests
// (package segmentlog_test), and any test of coordinator, snapshot, cache,
// client, infra and the outer packages.
//
// Every function fails the test it is given with t.Fatalf, so it must be
// called from the test's goroutine.
package testkit
