// Package api is Cairn's HTTP API: one ordinary http.Handler that the
// Lambda functions serve through Function URLs (functions/node,
// functions/coordinator, functions/snapshot, each mounting its role's
// routes) and that `cairn serve` mounts whole. openapi.yaml (served at
// GET /v1/openapi.yaml) is the reference; this comment gives the decisions
// behind it.
//
// # Routes
//
//	GET    /healthz                         every function; never needs a token (nor does HEAD)
//	GET    /metrics                         every function; Prometheus text
//	GET    /v1/openapi.yaml                 every function
//	POST   /v1/pchannels/{p}/append         node: JSON or binary batch → acks
//	GET    /v1/pchannels/{p}/messages       node: from, vchannel, type, max, wait → messages, next
//	GET    /v1/pchannels/{p}/tail           node: next offset
//	POST   /v1/pchannels/{p}/sync           node: a timetick below which nothing more is written
//	POST   /v1/vchannels/{v}/append         node: an append to the vchannel's pchannel
//	GET    /v1/vchannels/{v}/messages       node: a read kept to the vchannel (restored history first)
//	POST   /v1/vchannels/{v}/txns           node: begin {keepalive} → txn handle
//	POST   /v1/txns/{txn}/append            node: buffer messages in the transaction
//	POST   /v1/txns/{txn}/commit            node: write it as one batch → acks
//	POST   /v1/txns/{txn}/rollback          node: drop it
//	GET    /v1/pchannels                    coordinator: status table (holder, term, tail, checkpoint)
//	GET    /v1/pchannels/{p}/lease          coordinator: one lease record
//	GET    /v1/leases                       coordinator: every lease record
//	POST   /v1/vchannels                    coordinator: create {name, pchannel?}
//	GET    /v1/vchannels                    coordinator: list (pchannel, state filters)
//	GET    /v1/vchannels/{v}                coordinator: describe
//	DELETE /v1/vchannels/{v}                coordinator: drop
//	GET    /v1/vchannels/{v}/location       coordinator: pchannel, holder node and its address
//	POST   /v1/vchannels/{v}/trim           coordinator: {before} → the vchannel's earliest position
//	PUT    /v1/vchannels/{v}/retention      coordinator: {max_age?, max_bytes?} → policy, earliest, bytes held
//	POST   /v1/broadcasts                   coordinator: {id, vchannels, payload, ack, ...} → task (202 while pending)
//	GET    /v1/broadcasts                   coordinator: list (state filter)
//	GET    /v1/broadcasts/{id}              coordinator: one broadcast task
//	POST   /v1/pchannels/{p}/flush          snapshot: flush to segments now
//	POST   /v1/pchannels/{p}/trim           snapshot: {before} → the pchannel's earliest position
//	PUT    /v1/pchannels/{p}/retention      snapshot: {max_age?, max_bytes?} → policy, earliest, bytes held
//	POST   /v1/snapshots                    snapshot: create {name, vchannels}
//	GET    /v1/snapshots                    snapshot: list (vchannel filter)
//	GET    /v1/snapshots/{name}             snapshot: describe
//	DELETE /v1/snapshots/{name}             snapshot: drop
//	POST   /v1/snapshots/{name}/restore     snapshot: {job_id?, targets} → job (202 while running)
//	GET    /v1/restores/{id}                snapshot: a restore job's state and progress
//
// Routes are rows of one table (routes.go) with the role that serves them.
// A test keeps the table and openapi.yaml equal; another lints openapi.yaml
// with a pinned Redocly CLI (testdata/redocly, rules in redocly.yaml).
//
// # Errors
//
// Every error is JSON {"code", "message"}; clients switch on code. An
// answer to a store failure or an unexpected error (internal, unavailable
// from the store, outcome_unknown) says so in general words with a "ref";
// the cause (the store's text, which names keys and endpoints) is logged
// under that ref and never sent:
//
//	400 malformed, invalid_name, invalid   bad JSON, query, position, name (path traversal
//	                                       included: never a redirect), message type
//	401 unauthorized                       bearer token missing or wrong (cairn serve --token)
//	404 not_found, unknown_pchannel,       no such route; a pchannel never written (or, on
//	    unknown_vchannel, unknown_snapshot, create, outside the pchannel set); no such
//	    unknown_restore, unknown_txn,      vchannel, snapshot, restore job, open transaction
//	    unknown_broadcast                  or broadcast
//	405 method_not_allowed
//	408 request_timeout                    the body did not arrive within Config.BodyTimeout
//	409 fenced                             a newer term took the pchannel; not delivered
//	409 exists, vchannel_dropped,          a snapshot name, restore job ID, restore target or
//	    binding_conflict, wrong_state,     broadcast ID (with other content) taken; a dropped
//	    txn_expired                        vchannel; another binding; a snapshot not
//	                                       committed, or a broadcast target whose create
//	                                       message is not in the WAL yet; a lapsed
//	                                       transaction, or one its commit sealed
//	410 truncated                          the position lies below a trim point ("earliest" in the body) or the flush checkpoint
//	412 offset_mismatch                    expected_offset is not the tail; nothing written
//	412 out_of_sequence                    after_seq's message is neither acked nor queued; nothing written
//	413 too_large                          body over Config.MaxBodyBytes, batch over MaxBatchBytes
//	415 unsupported_media_type
//	429 too_many_waiters                   + Retry-After
//	431 headers_too_large                  headers over net/http's 1 MiB (Listener)
//	500 internal, corrupt
//	501 not_implemented                    an unknown transfer encoding (Listener)
//	503 lease_held, outcome_unknown,       + Retry-After
//	    unavailable, no_holder
//
// A request whose body ends before its length (the client hung up
// mid-body) is the client's fault: answered 400 malformed in case it still
// listens, logged at debug level, and counted in cairn_http_requests_total
// under code="client_closed" (MetricClientClosed), not as a status.
//
// # Decisions
//
// The pchannels are the configured set (system.Config.PChannels): the data routes
// (append, read, tail, sync, flush) answer 404 unknown_pchannel for any
// other name before touching the store, so a typo never makes a permanent
// pchannel with its lease, writer and flusher. A configured pchannel comes
// to exist with its first append (its lease record is created then;
// records are never deleted). Reads, tail and sync of one that has no
// lease record answer 404 unknown_pchannel too — an empty read would hide
// a typo in the name.
//
// expected_offset makes an append conditional. Once every earlier append
// of this server to the pchannel has resolved (an append with an expected
// offset takes the pchannel's writer exclusively), the batch is written only
// if the pchannel's tail (the writer's ack frontier) is exactly the
// expected offset, and it then lands there; otherwise the answer is 412
// offset_mismatch, nothing is written, and the Cairn-Next-Offset header
// carries the tail. Messages whose idempotency key was acked before are
// answered as duplicates, as always. The check comes before deduplication:
// a conditional append retried after an unknown outcome meets 412 if its
// first try landed; the client reads back, or retries with the same keys
// and no expected_offset. Offsets above MaxOffset (2^53−1) are refused, so
// that every offset is exact in any JSON client; timeticks, which pass
// 2^53, are JSON strings.
//
// after_seq keeps one producer's batches in order with several in flight.
// It names a sequence number; every message of the append must carry an
// idempotency key of one producer and epoch. The batch is written only if
// the message keyed (producer, epoch, after_seq) is acked within the dedup
// window or queued on the writer ahead of it (segmentlog.Writer.Holds), so
// it lands behind that message or not at all; the server waits up to 100
// ms for that (the message is usually in a request a moment behind on
// another connection), then answers 412 out_of_sequence, nothing written. A client sends batch N+1 with the last
// seq of batch N, and on 412 waits for batch N's outcome before it sends
// N+1 again (without after_seq once N is acked: a key evicted from the
// window also answers 412). after_seq and expected_offset exclude each
// other. A shared writer (Lambda) checks its folded log only, so a batch
// racing one that another environment is writing meets 412.
//
// Reads go through segmentlog's Scanner with the pool's cache and the
// snapshot package's segment reader, so a read below the flush checkpoint
// comes from Arrow segments, then the WAL, with no gap.
//
// Reads long-poll: the answer comes as soon as there is at least one
// message (up to max and Config.MaxReadBytes of payload), or when wait
// (capped at Config.MaxWait) is over, with no messages. next is the
// position after the last message returned; from=latest is resolved to the
// tail before reading, so next is concrete even for an empty answer.
//
// Bodies are limited by http.MaxBytesReader (Config.MaxBodyBytes); JSON is
// decoded strictly (unknown fields, trailing data and invalid UTF-8 are
// 400); every pchannel and vchannel name passes segmentlog.ValidateName; an
// append is validated whole before any writer is opened, so a bad request
// writes nothing to the store. Property keys starting with "cairn." are
// Cairn's own (ReservedPropertyPrefix): every write route refuses them
// (400 invalid), so a reader can trust them. A message quotes at most a
// 128-byte prefix of any string the client sent.
//
// One rule for the vchannel of a message, on both append routes: a name
// the registry does not know may tag a pchannel append (a raw tag); a
// registered vchannel takes messages only on its own pchannel (else 409
// binding_conflict) and only while active (else 409 vchannel_dropped).
//
// A vchannel is bound to one pchannel for good, so the data routes by
// vchannel resolve the binding through the registry (a record read by this
// process answers for a second, a drop through it at once) and then run the
// pchannel routes' code with the vchannel filter; a read from earliest
// starts at the vchannel's create message. A node that does not hold the
// pchannel does not redirect (a redirect would drop the bearer token at
// another host and replay bodies): like the pchannel routes it takes the
// lease if it is free, else waits system.Config.LeaseWait and answers 503
// lease_held with Retry-After; GET /v1/vchannels/{v}/location names the
// holder's address for the client to go there. Create and drop append
// their control message through this process's pool the same way, so in a
// Lambda deployment they succeed only while the pchannel's lease is free or
// held by the answering container.
//
// A transaction lives in the writer that began it; its handle
// "{pchannel}:{vchannel}:{id}" routes the later calls without the
// registry, and the ID's high 32 bits (the term) tell a handle of an
// earlier writer at once (404 unknown_txn), except for a retried commit,
// which the idempotency window answers on any term. In shared write mode
// it lives in a record in the bucket instead (segmentlog.SharedWriter's
// transaction calls), so any environment serves any call; a call after the
// commit's seal answers 409 wrong_state.
//
// Snapshot create pins, flushes and commits synchronously. A restore runs
// in the background of the process that took it (snapshot.Restore, then
// the target vchannels created on the least loaded pchannels); the route
// answers 202 once the job record exists, and GET /v1/restores/{id} reports
// state and progress, resuming a job no process runs. A restored vchannel's
// reads deliver its history from the job's manifest (source IDs, positions
// restored:OFFSET.INDEX, restored: true), then its own messages from its
// create message on; which job restored a vchannel is looked up once per
// process (restore jobs are listed) and kept, because a target is created
// only after its job is done.
//
// A broadcast is a coordinator.Broadcaster task, persisted before anything
// is appended and idempotent by its ID; the server's Broadcaster appends
// the copies through this process's pool, like create and drop. The route
// runs the task for the body's wait (default 10 s, capped at
// Config.MaxWait like a read's long poll, so that it answers within a
// Lambda function's timeout) and answers the task: 200 once it is
// finished, whether done or failed (its state and error say which, as a
// restore job's do: a failed task is an outcome, not a refused request),
// 202 while it is pending (the wait ran out, another run holds its locks,
// or a sync ack waits for a flush). Pending tasks are resumed by
// `cairn serve`'s broadcast loop and by the maintenance round, which also
// delete finished tasks an hour old. A broadcast is checked up front
// (coordinator.BroadcastRequest.Validate, and the size of each copy against
// system.Config.MaxBatchBytes), so that no task is saved with a copy the writers refuse;
// a copy refused anyway fails its task.
//
// # Connections
//
// HTTPServer and Listener (cairn serve) bound every connection: headers
// within HeaderTimeout, the body within BodyTimeout of the headers (set
// per request, then lifted, so that a long poll's background read is not
// cut), the answer within WriteTimeout after the body plus the request's
// wait for a long poll (http.ResponseController extends the deadline),
// keep-alive connections closed after IdleTimeout, and at most MaxConns
// connections open (netutil.LimitListener). The answers net/http writes
// itself before any handler (431, a 400 for a request it cannot parse or
// one without Host, 501) are rewritten on the way out into JSON errors, and
// counted under route="unparsed".
//
// # Writers
//
// The node role appends through its system's writer pool (system.Pool:
// write modes, the lease wait, the retry of appends that did not land);
// this package only maps its errors to answers (system.BusyError: 503
// lease_held; system.OffsetMismatchError: 412 offset_mismatch;
// system.ErrOutOfSequence: 412 out_of_sequence).
//
// # Concurrency
//
// Server and the handlers are safe for concurrent use. Config is read
// once, by New. One Server per system.System: its HTTP metrics register on
// the system's registry.
//
// # Example
//
//	store, _ := objstore.NewFS(".cairn-data")
//	sys, err := system.New(system.Config{}, store)
//	if err != nil { ... }
//	if err := sys.Probe(ctx); err != nil { ... }
//	srv, err := api.New(api.Config{}, sys)
//	if err != nil { ... }
//	defer srv.Close(context.Background()) // releases the leases
//	http.ListenAndServe("127.0.0.1:7070", srv.Handler(api.AllRoles))
package api
