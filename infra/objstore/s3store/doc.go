// Package s3store is the objstore.Store adapter for S3 and S3-compatible
// stores (MinIO), over aws-sdk-go-v2. AWS and MinIO run the same code: an
// endpoint and path-style addressing are all that differ.
//
// Conditional writes map onto S3's: PutIfAbsent sends If-None-Match: *,
// PutIfMatch sends If-Match: <etag>. A 412 becomes objstore.ErrExists or
// objstore.ErrConflict; a 404 on If-Match becomes ErrConflict; a 409
// ConditionalRequestConflict, 5xx, throttling, timeouts and broken
// connections wrap objstore.ErrTransient, so objstore.IsRetryable is the
// only retry rule callers need.
//
// Retries. Reads, List, Put and Delete keep the SDK's standard retryer: they
// are idempotent. The two conditional PUTs are sent exactly once: if the
// SDK retried a PutIfMatch whose first attempt landed but whose reply was
// lost, the retry would meet the new ETag and report ErrConflict for a write
// that in fact succeeded; a retried PutIfAbsent would likewise turn success
// into ErrExists without the caller knowing a retry happened. Sent once, a
// lost reply surfaces as a retryable error and the caller, which knows the
// protocol, retries and reads back.
//
// Payload signing. Over TLS (AWS's own endpoints, an https Endpoint) a PUT's
// body is not hashed for the SigV4 signature: the SDK signs an unsigned
// payload and sends a CRC32 trailer, whatever AWS_REQUEST_CHECKSUM_CALCULATION
// says. Over plain HTTP (MinIO on loopback) the signature covers the body's
// SHA-256, as S3's rules require there. The adapter keeps PUT bodies
// seekable with a known length so that this holds (payload_test.go checks
// the header both ways; BenchmarkPutPayloadHash measured a 1 MiB PUT at
// 1.91 ms hashed over HTTP and 1.92 ms unsigned over TLS on a 2-core
// machine: TLS's encryption costs what the hash did).
//
// Conditional reads: GetIfNoneMatch sends If-None-Match: <etag>; S3's 304
// Not Modified, which the SDK reports as an error carrying the status,
// becomes objstore.ErrNotModified.
//
// Prefix. The adapter itself maps keys to object names one to one;
// Config.Prefix is applied by objstore.WithPrefix around it (New does
// that), the same wrapper any store can use.
//
// ETags are S3's: for single-part PUTs, the MD5 of the body. Unlike the
// filesystem and memory stores, writing the same bytes again therefore
// yields the same ETag; Cairn's CAS records carry a monotone version, so
// successive versions never have equal bytes.
//
// Example:
//
//	cfg := s3store.ConfigFromEnv(os.Getenv)
//	s, err := s3store.New(ctx, cfg)
//	if err != nil { ... }
//	if err := objstore.Probe(ctx, s, "probe"); err != nil { ... }
package s3store
