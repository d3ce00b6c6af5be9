// Package coordinator keeps Cairn's control-plane records as CAS-updated
// objects in the bucket, with no database and no in-memory locks: pchannel
// leases (Leases), the vchannel registry (Registry), node sessions and the
// assignment of pchannels to nodes (Balancer, and Node on the node side),
// and broadcast tasks with their resource locks (Broadcaster).
//
// # Design
//
// Every decision (who gets a lease, what a renew or release changes, where
// a vchannel binds, what a drop or a pin does, where a pchannel goes) is a
// pure function of records and a clock reading, with no I/O
// (lease_decide.go, vchannel_decide.go, assignment_decide.go). Thin drivers
// read the records, decide, and write the result with PutIfAbsent (no
// record yet) or PutIfMatch (the ETag they read), through the one CAS loop
// cas.Update (record.go: updateRecord). On a lost race they read and decide
// again; a write whose reply was lost is resolved by reading the record
// back, never by a blind resend (cas.Update states the policy). Correctness therefore never depends
// on there being a single coordinator: any number of Registries and
// Balancers may run at once, and only a lease acquire makes a holder.
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
// # Lease rules (docs/protocol.md, "Acquire" and "Append" 4)
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
// # Other records
//
// Each is JSON with a "format" number (1) and a "version" bumped by every
// write, never deleted (a deleted thing becomes a tombstone state) but for
// a finished broadcast task past its retention:
//
//	{prefix}/meta/vchannels/{v}.json      VChannel: name, pchannel (the binding, fixed),
//	                                      state active|dropped|reclaiming, created_at, created
//	                                      and dropped {id, timetick} (where the create and drop
//	                                      messages landed), dropped_at, position {id, timetick,
//	                                      done}, trim {offset, index} (Registry.Trim; only grows),
//	                                      pins (snapshot names), version
//	{prefix}/meta/nodes/{node}.json       Session: node, address, incarnation, started,
//	                                      heartbeat, stopped, version (written by the node only)
//	{prefix}/meta/assignments/{p}.json    Assignment: pchannel, state unassigned|assigning|
//	                                      assigned|unassigning, node, from, takeover, since, reason,
//	                                      avoid, avoid_until, version (written by balancers only)
//
//	{prefix}/meta/broadcast/{id}.json     Broadcast: id, payload, properties, ack fast|sync,
//	                                      resources, targets [{vchannel, pchannel,
//	                                      first_attempt, appended {id, timetick}, synced,
//	                                      skipped}], state pending|done|failed, error,
//	                                      created_at, finished_at, version. A finished task is
//	                                      its own tombstone; Broadcaster.Collect deletes it
//	                                      after BroadcastConfig.TombstoneRetention, the one
//	                                      record that is ever deleted.
//	{prefix}/meta/locks/{resource}.json   Lock: resource, holder (broadcast ID), nonce (run),
//	                                      expires, released, version
//
// The pchannel set is the set of assignment records: Config.PChannels
// (default p0…p3) are created "unassigned" by the first Balancer or
// Registry that misses one. It only grows.
//
// # vchannels
//
// Create binds a vchannel to the pchannel with the fewest active vchannels,
// or to the one named, then appends a create message (TypeCreateVChannel)
// through a ControlWAL and records where it landed; creating it again is
// idempotent while the binding matches (ErrBindingConflict otherwise). Drop
// first CASes the record to dropped with its position done, then appends a
// drop message and records where it landed. A position update after the
// drop fails (ErrVChannelDropped), so a stale flusher cannot write a
// position back, and nothing moves the pchannel's checkpoint (docs/protocol.md,
// "Flush, truncation, GC" rule 7). Control messages carry idempotency keys
// (producer "cairn.registry/{v}"), so a retried create or drop lands once.
// Snapshots Pin a vchannel while it is active; MarkReclaiming (GC) succeeds
// only for a dropped vchannel with no pins (docs/protocol.md, "Snapshots" rule 1).
// Pin, Unpin, Dropped and MarkReclaiming have the signatures the snapshot
// package declares (snapshot.VChannels, snapshot.Reclaimer).
// Locate tells a producer which node holds the vchannel's pchannel (from the
// lease) and its address (from the session).
//
// # Sessions, assignment, balance (MEP 7 states)
//
// A Node registers a session with a fresh incarnation, heartbeats it every
// HeartbeatInterval (one conditional PUT), and polls the assignment records
// every PollInterval (one LIST; a record is read only when its ETag
// changed), doubling the pause up to MaxPollInterval while nothing changes
// (Kick polls at once: a Balancer in the same process signals its changes
// on Changes). It calls its Holder to open a writer for every pchannel
// assigned to it (Hold: segmentlog.OpenWriter, whose lease acquire is the
// only confirmation and the only thing that bumps a term) and to close the
// writer of one that moved away (Release: Writer.Close releases the lease).
// Every poll it calls Hold again for what it holds, as a watchdog: a writer
// that stopped by itself keeps renewing its lease until closed, so the
// Holder must close and replace it. An assignment with TakeOver (a
// balancing move) is taken with Holder.TakeOver instead, once per
// assignment version: the lease is taken from its live holder, whose
// writer the new term fences. Only that call takes a live lease; the
// watchdog's Holds acquire, so two nodes that disagree about an
// assignment never take it from each other in turn.
//
// A Balancer round reads the assignment and session records the same way,
// the lease records it needs (Leases.Describe; a lease known to be live is
// not read again until it could have lapsed), and decides:
//
//	unassigned  → assigning(N)     a live node exists (N: fewest pchannels)
//	assigning(N) → assigned(N)     N holds the lease
//	assigning(N) → assigning(M)    N is dead and does not hold it, or N left it free StuckTimeout
//	assigned(N) → assigning(M)     the lease is free: released, or expired + margin
//	                               (a lease N released while alive is parked: N keeps it)
//	assigned(N) → assigning(M)     balancing, when nothing is in transit, with TakeOver:
//	                               M takes the live lease over (stuck after StuckTimeout)
//	unassigning(N→M) → assigning(M) N's lease is free (records of older balancers)
//	… → unassigned                 no live node (the remaining pool)
//
// An expired session alone never moves a pchannel whose lease is live
// (docs/protocol.md, "Broadcast and coordinator" rule 4): the holder may
// be a working writer whose heartbeats are late. A stuck node (alive,
// but it does not take the free lease it was given) is avoided by balancing
// for 4 × StuckTimeout.
//
// Balancer.Run runs a round every CheckInterval while anything is in
// transit, doubling the pause up to MaxCheckInterval while every pchannel
// is assigned to a live node that holds or parked its lease.
//
// Failover time after a holder stops (defaults): its lease lapses at most
// TTL after its last renew and may be taken Margin later, 9.5–12.5 s; then
// up to one MaxCheckInterval (16 s; 1 s once a round saw the session
// lapse) for a balancer to reassign, one PollInterval (2 s) for the node to
// see it, and the writer's recovery. A dead node's parked pchannels move
// once its session lapses (SessionTTL), with no lease to wait for.
//
// Requests at rest (defaults): a node 1 PUT / 3 s + 1 LIST / 16 s ≈ 0.4/s
// (its writers add a GET and a PUT per RenewInterval per held pchannel
// until parked); a settled balancer 2 LISTs + one GET per node heartbeat
// every 16 s, and no lease GET for a parked pchannel.
//
// # Broadcasts (docs/protocol.md, "Broadcast and coordinator")
//
// Broadcaster.Submit persists a task as pending before anything is
// appended. A run takes the task's resource locks ("vchannel.{v}" for each
// target, plus the request's own) in name order, all or none, appends one
// TypeBroadcast copy per vchannel through the ControlWAL with a deadline
// inside its lock lease, records where each landed, releases the locks,
// waits for the flush checkpoints if the task asks for sync-up acks, and
// marks the task done. Any instance resumes a pending task (Run, Resume).
//
//   - Exactly once: the writer keys each copy by (broadcast ID, vchannel)
//     and remembers it for segmentlog.BroadcastRetention (24 h, carried by
//     checkpoints and recovery); a copy sent again gets the first copy's
//     position. A run never sends a copy more than BroadcastRetention − 1 h
//     after its first attempt (the task fails instead), and a writer
//     refuses a copy after its deadline, so a run that froze and thawed
//     cannot land one after losing its locks.
//   - One order: a lock belongs to its task from the first copy to the
//     last. A run that dies in between leaves it to the task: another task
//     may take a lapsed lock only from a task that has sent nothing or has
//     finished. So broadcasts sharing a vchannel are in one order on every
//     vchannel they share.
//   - The WAL truncation point ignores pending broadcasts (docs/protocol.md,
//     "Flush" rule 6): nothing re-reads the WAL to learn whether
//     a copy landed; the writers' memory of copies lives in the checkpoint.
//
// # Concurrency
//
// Leases, Registry and Balancer are safe for concurrent use by many
// goroutines, and any number of them in any number of processes may share
// one store; the store's per-key linearizable conditional writes are the
// only synchronisation. A Node's Run is called once; its accessors are safe
// for concurrent use. Clock skew between processes must stay within the
// lease margin (docs/protocol.md, "Parameters"); safety of the WAL itself never
// rests on it, and session liveness only decides how fast things move.
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
//
// A coordinator process runs a Balancer and serves a Registry; a node runs a
// Node whose Holder opens writers:
//
//	cfg := coordinator.Config{Layout: layout, PChannels: []string{"p0", "p1", "p2", "p3"}}
//	bal, err := coordinator.NewBalancer(cfg, store, leases)
//	go bal.Run(ctx)
//	reg, err := coordinator.NewRegistry(cfg, store, leases)
//	v, err := reg.Create(ctx, wal, "orders-1", "") // wal: a ControlWAL reaching the holder
//	loc, err := reg.Locate(ctx, "orders-1")         // loc.Node, loc.Address
//
//	node, err := coordinator.NewNode(cfg, store, "node-a", "http://10.0.0.7:7070", holder)
//	err = node.Run(ctx) // until ctx ends; then releases its pchannels and stops its session
package coordinator
