// Package bench is `cairn bench`: it measures Cairn on one object store and,
// next to every figure, the raw store doing the same work with the same
// object sizes and concurrency, then checks the figures against the
// project's targets.
//
// One Run measures, in this order (Phases names them):
//
//   - append: Writer throughput for 1 KiB and 16 KiB messages on one
//     pchannel and on eight (64 producers each, group commit, linger 0,
//     W = 8), against raw PutIfAbsent of objects of the Writer's mean batch
//     size with W PUTs in flight per pchannel;
//   - latency: one sequential producer (linger 0) against raw PUTs of the
//     same one-message object, request by request;
//   - tail: ack-to-delivery latency of a scanner sharing the writer's cache
//     and tail notification, and of one that long-polls the store as another
//     process would; raw GETs of the same slots alongside;
//   - catchup: reading a WAL from the start, and the same messages from
//     Arrow segments after a flush, against raw parallel GETs of the WAL;
//   - takeover: from the moment a dead holder's lease is takeable to the
//     new holder's first acked append, with every store request counted;
//   - window: a million keyed lines on one vchannel (a full idempotency
//     window), read before and after a flush, and a takeover that rebuilds
//     the window against one that has little to rebuild;
//   - http: appends through the HTTP API (functions/api served on a
//     loopback port, the Go SDK as client) against the library.
//
// Each comparison interleaves its two sides in slices (Cairn, raw, Cairn,
// raw, ...) so that a noisy neighbour on a shared machine weighs on both.
// Nothing here asserts a timing: Run returns figures, and Report.Targets
// says which targets they meet.
//
// Run is not safe to call concurrently on one store; a Report is a plain
// value.
//
//	rep, err := bench.Run(ctx, bench.Config{Store: store, StoreName: "fs", Duration: 5 * time.Second})
//	rep.WriteTable(os.Stdout)
package bench
