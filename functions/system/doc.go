// Package system is Cairn's node runtime and its one assembly: everything
// a process runs over one object store, without HTTP. `cairn serve`, every
// Lambda main (through functions/internal/lambdamain) and the maintenance
// round build it with New; functions/api serves it over HTTP.
//
// # Assembly
//
// New(cfg, store) applies cfg's defaults (Config.EnsureDefaults), checks
// it (Config.Validate: among others the protocol's parameter relations,
// I + 2·R ≤ TTL − m and 2·TTL + 3·R_put + m ≤ min_age) and builds, sending
// no request: the lease service (coordinator.Leases), the writer Pool
// with its write-ahead cache and tail notification, the vchannel registry,
// the broadcaster (whose copies go through the pool), snapshots, the
// segment reader, and one Prometheus registry. Every part takes its store
// from StoreFor(component), so that cairn_store_requests_total says which
// part made each request. Probe checks once per process that the store
// honours the conditional writes the protocol relies on.
//
// # Writers
//
// Pool keeps one writer per pchannel, opened on first use and kept warm,
// so that a long-running process — or a warm Lambda container between
// invocations — keeps its writers, leases and cache. Config.WriteMode says
// which writer: WriteExclusive and WriteTakeover open a
// segmentlog.Writer holding the pchannel's lease (takeover takes a live
// lease over at once); WriteShared opens a segmentlog.SharedWriter, which
// holds no lease and appends beside other processes under the pchannel's
// shared term (docs/protocol.md, "Shared terms").
//
// A pchannel whose lease a live holder elsewhere has is not taken over in
// exclusive mode: the open retries for Config.LeaseWait, then fails with a
// *BusyError. A stopped writer (fenced, lease lost, failed) is replaced on
// the next request; a thawed container whose lease lapsed but was not
// taken renews and keeps its writer. An append that certainly did not land
// (fenced, closing) is retried once on a fresh writer, and so is one whose
// lease lapsed if every message carries an idempotency key; any other
// failure is returned as it is, an unknown outcome wrapped in
// segmentlog.ErrOutcomeUnknown. Appends run detached from the caller's
// context once handed to a writer. An exclusive writer idle for
// Config.IdleRelease (1 min) with no open transaction is closed the same
// way (the pchannel is parked: no renewals; Hold of it sends nothing) and
// the next request opens one again at once. Close closes every writer,
// releasing its lease with its tail, so the next holder needs no expiry.
//
// # Routes' operations
//
// What the HTTP API (functions/api) runs beside appends is here, without
// HTTP: Tail, Status, Flush and Read of a pchannel; ReadVChannel (a
// vchannel's restored history, then its own messages); HoldReads (the
// scanner startup delay, Config.ScannerStartupDelay); Broadcast (a task
// run for a wait); retention policies and trims; vchannel create and drop,
// BeginTxn, snapshot create and drop. They read through a store counted as
// component "api". Each checks what a caller could get wrong before it
// writes anything — a trim point beyond the tail, a broadcast copy no
// writer takes (CheckBroadcast), a restore or snapshot naming nothing —
// and refuses it with an error wrapping ErrInvalid or a core sentinel. ConfigFromEnv reads the runtime's environment
// variables (EnvVars).
//
// # Maintenance
//
// RunMaintenance is one round of the scheduled maintenance function: the
// stuck-assignment check, a flush and a compaction of every written
// pchannel, the pending broadcasts, retention, and GC (its doc lists the
// order and the reasons).
//
// # Concurrency
//
// System and Pool are safe for concurrent use.
package system
