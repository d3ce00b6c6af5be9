// Package cas is Cairn's one read–decide–write loop: Update changes a record
// in an objstore.Store by compare-and-swap (PutIfAbsent when there is none,
// PutIfMatch on the ETag read otherwise), deciding afresh from what it read
// after every lost race, and settles a write whose reply was lost by reading
// the record back, never by a blind resend. Every CAS-updated record of Cairn
// goes through it: leases and the other coordinator records
// (coordinator/record.go), the snapshot package's records and the checkpoint
// (snapshot/records.go, the flusher's commit in snapshot/flush_commit.go),
// and the shared transaction records (segmentlog/shared_txn_record.go).
// Update's documentation states the policy for unknown outcomes; the
// protocol (docs/protocol.md, "Records") depends on it.
//
// The decision is a pure function of the record read, so the loop is the
// only place that does I/O, and its tests (cas_test.go) drive it through
// lost replies, late writes, races and failing reads with a scripted store
// and objstore.Fault, under -race.
//
// Concurrency: Update is safe for concurrent use, by any number of
// goroutines and processes on one record; each call keeps its own state.
//
// Example, raising a counter record by one:
//
//	codec := cas.Codec[Counter]{Encode: json.Marshal, Decode: decodeCounter}
//	policy := cas.Policy{Timeout: time.Second, MaxAttempts: 16,
//		Backoff: backoff.Policy{Min: 2 * time.Millisecond, Max: 64 * time.Millisecond}}
//	rec, err := cas.Update(ctx, store, "meta/counter.json", codec, policy,
//		func(cur cas.Record[Counter]) (Counter, error) {
//			return Counter{Version: cur.Value.Version + 1, N: cur.Value.N + 1}, nil
//		})
package cas
