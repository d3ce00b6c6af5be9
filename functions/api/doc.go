// Package api is Cairn's HTTP API: one ordinary http.Handler that the
// Lambda functions serve through Function URLs (functions/node,
// functions/coordinator, functions/snapshot, each mounting its role's
// routes) and that `cairn serve` mounts whole. openapi.yaml (served at
// GET /v1/openapi.yaml) is the reference; this comment gives the decisions
// behind it.
//
// # Routes
//
//	GET  /healthz                      every function; never needs a token
//	GET  /metrics                      every function; Prometheus text
//	GET  /v1/openapi.yaml              every function
//	POST /v1/pchannels/{p}/append      node: JSON or binary batch → acks
//	GET  /v1/pchannels/{p}/messages    node: from, vchannel, type, max, wait → messages, next
//	GET  /v1/pchannels/{p}/tail        node: next offset
//	POST /v1/pchannels/{p}/sync        node: a timetick below which nothing more is written
//	GET  /v1/pchannels                 coordinator: status table (holder, term, tail, checkpoint)
//	GET  /v1/pchannels/{p}/lease       coordinator: one lease record
//	GET  /v1/leases                    coordinator: every lease record
//
// Routes are rows of one table (routes.go) with the role that serves them;
// vchannel routes (/v1/vchannels/...) and snapshot routes (/v1/snapshots/...)
// will be rows there when the coordinator's registry and the snapshot
// package land. A test keeps the table and openapi.yaml equal.
//
// # Errors
//
// Every error is JSON {"code", "message"}; clients switch on code:
//
//	400 malformed, invalid_name, invalid   bad JSON, query, position, name (path traversal
//	                                       included: never a redirect), message type
//	401 unauthorized                       bearer token missing or wrong (cairn serve --token)
//	404 not_found, unknown_pchannel        no such route; a pchannel never written
//	405 method_not_allowed
//	409 fenced                             a newer term took the pchannel; not delivered
//	410 truncated                          the position lies below the flush checkpoint
//	412 offset_mismatch                    expected_offset is not the tail; nothing written
//	413 too_large                          body over Config.MaxBodyBytes, batch over MaxBatchBytes
//	415 unsupported_media_type
//	429 too_many_waiters                   + Retry-After
//	500 internal, corrupt
//	503 lease_held, outcome_unknown,       + Retry-After
//	    unavailable
//
// # Decisions
//
// A pchannel comes to exist with its first append (its lease record is
// created then; records are never deleted). Reads, tail and sync of a
// pchannel that has no lease record answer 404 unknown_pchannel — an empty
// read would hide a typo in the name.
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
// writes nothing to the store.
//
// # Writers
//
// The node role keeps a Pool: one segmentlog.Writer per pchannel, opened
// on first use and kept warm with a shared write-ahead cache, so that a
// warm Lambda container keeps its writers, leases and cache across
// invocations. A pchannel whose lease a live holder elsewhere has is never
// taken over: the request waits up to Config.LeaseWait for a release or
// expiry, then answers 503 lease_held with Retry-After. A stopped writer is
// replaced on the next request; a thawed container whose lease lapsed but
// was not taken renews and keeps its writer. The pool, not the writer,
// persists the timetick batch after a quiet second, under the same gate as
// conditional appends, so that it never slips between an expected_offset
// check and its batch. Close (SIGTERM in Lambda and in cairn serve)
// closes every writer, releasing its lease with its tail, so the next
// holder needs no expiry.
//
// # Concurrency
//
// Server, Pool and the handlers are safe for concurrent use. Config is read
// once, by New.
//
// # Example
//
//	store, _ := objstore.NewFS(".cairn-data")
//	srv, err := api.New(api.Config{}, store)
//	if err != nil { ... }
//	defer srv.Close(context.Background()) // releases the leases
//	http.ListenAndServe("127.0.0.1:7070", srv.Handler(api.AllRoles))
package api
