// Package coordinator keeps Cairn's control-plane records as CAS-updated
// objects in the bucket, with no database and no in-memory locks. Today it
// hands out pchannel leases; the vchannel registry, node sessions,
// assignment/balancing and broadcast tasks will live here too, built the same
// way.
//
// # Design
//
// Every decision (who gets a lease, what a renew or release changes) is a
// pure function of the current record and a clock reading, with no I/O
// (lease_decide.go). A thin driver (Leases) reads the record, decides, and
// writes the result with PutIfAbsent (no record yet) or PutIfMatch (the ETag
// it read). On a lost race it reads and decides again; a write whose reply
// was lost is resolved by reading the record back, never by a blind resend.
// Correctness therefore never depends on there being a single coordinator.
//
// # Lease record
//
// One JSON object per pchannel at segmentlog.Layout.Lease(p), i.e.
// {prefix}/meta/leases/{pchannel}.json:
//
//	{
//	  "format": 1,                  // record format; anything else is rejected
//	  "pchannel": "p0",
//	  "term": 3,                    // bumped by exactly one by acquire, by nothing else
//	  "nonce": "0190…",             // the acquirer's nonce; one per term
//	  "holder": "node-a",
//	  "expires": "2026-…Z",         // deciding coordinator's clock; release sets it to "now"
//	  "released": false,
//	  "tail": 120,                  // tail hint: never above any holder's ack frontier
//	  "tt_max": 4660…,              // no tick of this term may exceed it (raised by acquire, renew)
//	  "last_tick": 4660…,           // highest tick a releaser reported
//	  "tick_floor": 4660…,          // every tick of this term is above it
//	  "version": 17,                // +1 on every write
//	  "acquired_at": "2026-…Z"
//	}
//
// Records are never deleted. The format never changes in place; a change of
// meaning takes a new "format" number.
//
// # Lease rules (PROTOCOL.md, "Acquire" and "Append" 4)
//
//   - Acquire is granted when there is no record, the lease is released, or
//     now > expires + margin by the deciding coordinator's clock. A retry with
//     the same nonce (and holder) gets the same term; anyone else gets a
//     *HeldError (ErrLeaseHeld) with how long to wait.
//   - The new term's tick floor is the releaser's last tick, or the expired
//     holder's tt_max; its tt_max is at least a TTL's worth of ticks above
//     the floor.
//   - Renew and release succeed only for the record's current (term, nonce);
//     otherwise ErrLeaseLost. A renew after expiry is allowed while nobody
//     has acquired, because acquiring bumps the term.
//   - A grant's Deadline is t_send + TTL − margin, t_send being read before
//     the operation's first store request.
//
// # Concurrency
//
// Leases is safe for concurrent use by many goroutines, and any number of
// Leases values in any number of processes may share one store; the store's
// per-key linearizable conditional writes are the only synchronisation.
// Clock skew between coordinators must stay within the margin
// (PROTOCOL.md, "Parameters"); safety of the WAL itself never rests on it.
//
// # Example
//
//	leases, err := coordinator.NewLeases(store, segmentlog.Layout{Prefix: "cairn"}, coordinator.LeaseConfig{})
//	if err != nil { ... }
//	g, err := leases.Acquire(ctx, "p0", "node-a", uuid.Must(uuid.NewV7()).String())
//	var held *coordinator.HeldError
//	if errors.As(err, &held) {
//		// wait held.RetryAfter, then try again with a fresh nonce
//	}
//	// write under g.Term until g.Deadline, ticks in (g.TickFloor, g.TickMax];
//	// renew every few seconds:
//	g, err = leases.Renew(ctx, "p0", g.Term, g.Nonce)
//	// and finally hand over with the ack frontier and the last tick used:
//	err = leases.Release(ctx, "p0", g.Term, g.Nonce, tail, lastTick)
package coordinator
