// Package client is the Go SDK of Cairn: a Producer, a Consumer and the
// admin calls, over the HTTP API only (openapi.yaml in functions/api is the
// reference). Of the server it imports only functions/api/wire, the API's
// bodies and codes (standard library only; most answer types here are its
// types under the SDK's names): a program that uses it pulls in net/http,
// log/slog and google/uuid, not the log's core.
//
// # Calls
//
// Every call takes a context first and sends one logical request, retried
// under the Client's RetryPolicy:
//
//   - busy answers (429, 502, 503, 504) are retried after the server's
//     Retry-After at least, and after a jittered exponential backoff
//     (infra/backoff, the one the server's retries use too);
//   - a timeout, a lost reply or 503 outcome_unknown means an append may
//     have landed. It is retried only when that is safe — every message
//     carries an idempotency key and there is no expected offset — and then
//     with the same keys, so the server answers the first copy's IDs
//     (marked Duplicate) and writes nothing twice. A Producer always keys
//     its messages. An unsafe append fails with ErrOutcomeUnknown instead;
//   - any other 4xx or 5xx is final.
//
// Errors from the server are *Error (status, code, message, Retry-After),
// and match the sentinels (ErrTooLarge, ErrInvalid, ErrFenced, ErrNotFound,
// ...) with errors.Is by their code. Errors the SDK makes itself wrap a
// sentinel too.
//
// # Producing
//
// A Producer appends to one pchannel: SendAsync queues a message and
// returns a Future; a dispatcher packs queued messages into batches (up to
// MaxBatchMessages and MaxBatchBytes) and keeps up to Window append
// requests in flight. Futures complete in Send order. Keys are (producer
// name, epoch, seq): the epoch comes from a UUIDv7 when the Producer is
// built, seq counts its messages. At any Window the log holds the messages
// in Send order: a batch sent while the one before it is unresolved names
// that batch's last seq (AppendOptions.AfterSeq), and the server writes it
// only behind that batch (412 out_of_sequence otherwise, and the Producer
// sends it again). A batch that fails for good stops the Producer (see
// Producer), so the log has no gap after a failure.
//
// Appends (the Producer's and Client.Append) go as the binary batch body,
// application/x-cairn-batch, which spares both sides JSON and base64; a
// message that body cannot carry (an unknown type, a string over 64 KiB or
// not UTF-8) sends its append as JSON, whose answer names the fault. The
// Client reuses the buffers of binary bodies, each once every attempt's
// request body was closed by the transport (as http.RoundTripper
// promises): a custom transport must close request bodies, or the SDK
// allocates a new buffer per append.
//
// # Consuming
//
// A Consumer reads one pchannel from a position ("earliest", "latest",
// "id:OFFSET.INDEX", "timetick:T"), long-polling at the tail, and keeps
// Position — the place right after the last message it delivered — to be
// persisted and given back as ConsumerConfig.From to resume. It delivers
// each message once.
//
// # vchannels, transactions, snapshots, broadcasts
//
// A vchannel is a logical stream bound to one pchannel (CreateVChannel,
// VChannels, VChannel, DropVChannel, Locate). VChannelProducer,
// VChannelConsumer, AppendVChannel and ReadVChannel address it by name: the
// server finds its pchannel. A vchannel restored from a snapshot reads its
// restored history first (Delivery.Restored; positions AtRestored), then
// its own messages.
//
// BeginTxn opens a transaction on a vchannel, held by the server's writer
// of its pchannel: Txn.Append buffers, Txn.Commit writes everything as one
// batch (retried freely: a landed commit answers again, marked Duplicate),
// Txn.Rollback drops it. A failover aborts it.
//
// TrimPChannel and TrimVChannel make everything before a position
// unreadable (the server's GC then deletes it, but never what a snapshot
// pins); SetPChannelRetention and SetVChannelRetention set the max age and
// max bytes the server trims down to. A read below the earliest position
// fails with ErrTruncated, and EarliestOf(err) says where to read on;
// AfterID(id) is an exclusive start, right after message id.
//
// Flush flushes a pchannel to segments now. CreateSnapshot, Snapshots,
// Snapshot and DropSnapshot manage snapshots; Restore starts a restore job
// (idempotent by its JobID, which the SDK picks when the caller does not)
// and RestoreStatus or WaitRestore follow its progress.
//
// Broadcast puts one message on several vchannels, a copy of type
// broadcast on each (Delivery.BroadcastID names it), as a task of the
// server's coordinator: idempotent by its ID, acknowledged once every copy
// is in the WAL (AckFast) or flushed (AckSync). It returns the task when it
// is finished or the server's wait ran out (State pending: the server
// resumes it in the background); DescribeBroadcast and ListBroadcasts
// follow tasks.
//
// Errors of these calls match ErrNotFound (unknown vchannel, snapshot,
// restore job, transaction or broadcast) and ErrConflict (a name taken, a
// dropped vchannel, another binding, a snapshot not committed, an expired
// transaction) besides the sentinels above.
//
// # Deployments
//
// New talks to one URL that serves every route (`cairn serve`). A Lambda
// deployment has one Function URL per role: NewEndpoints takes the node,
// coordinator and snapshot URLs (Endpoints) and sends each call to the
// function that serves it. Function URLs authenticate with AWS SigV4:
// client/sigv4 (a package of its own, so that this one does not pull in
// the AWS SDK) signs every attempt through WithRequestSigner. WithToken is
// the bearer token of `cairn serve --token`.
//
// # Wire types
//
// The SDK keeps its own copies of the API's JSON types (it imports nothing
// of the server); wire_test.go checks every one against the schemas of
// functions/api/openapi.yaml, field by field, so that they cannot drift.
//
// # Concurrency
//
// Client, Producer and Txn are safe for concurrent use. A Consumer is not,
// except for Position. Futures are safe to wait on from any goroutine.
//
// # Example
//
//	c, err := client.New("http://127.0.0.1:7070", client.WithToken(os.Getenv("CAIRN_TOKEN")))
//	if err != nil { ... }
//	p, err := c.Producer("p0", client.ProducerConfig{VChannel: "v0"})
//	if err != nil { ... }
//	for _, s := range []string{"a", "b", "c"} {
//		if _, err := p.SendAsync(ctx, client.Message{Payload: []byte(s)}); err != nil { ... }
//	}
//	if err := p.Close(ctx); err != nil { ... } // flushes: every message acked
//
//	co, err := c.Consumer("p0", client.ConsumerConfig{From: saved})
//	for {
//		d, err := co.Next(ctx)
//		if err != nil { ... }
//		handle(d)
//		saved = co.Position() // persist it to resume after a restart
//	}
package client
