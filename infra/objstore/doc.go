// Package objstore is Cairn's port to object storage, the only stateful
// thing Cairn talks to: the Store interface, its sentinel errors, the key
// rules, and the adapters that need no network.
//
//   - Memory: in-process, for unit tests.
//   - FS: a directory on the local filesystem, the embedded default; its
//     conditional writes hold across processes on one machine. Each object
//     is a plain file holding its bytes alone (a segment opens in any Arrow
//     reader in place), its ETag and metadata in a sidecar beside it
//     (fs_format.go); MigrateFS converts a directory of the older layout.
//   - Fault: wraps any Store and injects transient errors, latency, lost
//     replies and writes that land after their caller timed out.
//   - WithPrefix and Observe: wrappers for concerns every store shares, a
//     key prefix (several deployments in one bucket) and counting
//     requests.
//   - s3store (a sub-package): S3 and MinIO, the only code that imports the
//     AWS SDK.
//
// Every adapter passes one acceptance suite (objstoretest), and Probe checks
// at start-up that a real store honours the conditions the protocol relies
// on. Callers retry exactly when IsRetryable says so.
//
// Concurrency: every Store in this package is safe for concurrent use.
//
// Example, creating a WAL slot and reading it back after an ambiguous
// failure:
//
//	meta := map[string]string{"term": "7"}
//	etag, err := store.PutIfAbsent(ctx, key, batch, meta)
//	if objstore.IsRetryable(err) {
//		etag, err = store.PutIfAbsent(ctx, key, batch, meta) // same bytes
//	}
//	if errors.Is(err, objstore.ErrExists) {
//		o, gerr := store.Get(ctx, key) // ours, or someone else's?
//		...
//	}
package objstore
