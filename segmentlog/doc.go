// Package segmentlog is Cairn's write-ahead log: the binary format of a WAL
// batch object, the Writer that appends batches to a pchannel as its lease
// holder, the Scanner that reads them back, the timetick clock that stamps
// messages, and the idempotency-key dedup window. The rules it implements
// are in docs/protocol.md; this comment is the specification of the bytes.
//
// # Concurrency
//
// Batch, Message, Header and IdemKey are plain values: safe for concurrent
// reads, and they need outside synchronization for writes. Encode,
// AppendEncode, DecodeBatch and DecodeHeader keep no shared state and may
// be called from any number of goroutines (AppendEncode writes only into
// the dst it is given). Writer and Scanner state their own contracts in
// their documentation.
//
// # Writing and reading
//
// A Writer is the one lease holder of a pchannel (OpenWriter acquires the
// lease through a Leases service, replays the WAL from the flush checkpoint
// through the reading rule, and claims a window of W slots: a fence and
// W−1 fillers; its checkpoint reads overlap the lease acquire and the
// window's PUTs, so a takeover at the tail costs five sequential store round
// trips to its first ack). Append, AppendBatch, AppendAt, AppendControl,
// Sync and the transaction calls are safe for concurrent use; concurrent
// appends are group-committed into one batch object each, at most W beyond
// the ack frontier, and acknowledged strictly in offset order. An Append's
// messages land together in one batch; AppendBatch takes any number of
// messages in one call and one wake-up, as if each were its own Append,
// so group commit may cut them between batches (the way to pipeline many
// messages without a goroutine each). AppendAt lands at one given slot
// or writes nothing. A writer that stops by itself (its lease lapsed, a
// slot it cannot fill) releases its lease once its batches resolved; a
// fenced one leaves it to the newer term. An Ack names the message's ID (offset, index)
// and timetick; an error wrapping ErrOutcomeUnknown means the message may
// still be delivered, so retry it with the same idempotency key, whose
// window survives failover. ErrFenced means it never will be. Transient
// store failures of slot PUTs and reads are retried with the jittered
// pauses of infra/backoff.
//
// A transaction (BeginTxn, AppendTxn, CommitTxn, RollbackTxn) is buffered
// by the writer and written at commit as one batch object — begin, bodies,
// commit — so every reader sees all of it or none of it, at its commit.
// A transaction still open when its writer stops is aborted; a retried
// commit gets the same answer on whichever term it reaches.
//
// A SharedWriter appends without holding a lease, beside any number of
// others in other processes, under the pchannel's shared term
// (OpenSharedWriter adopts it, or opens one: a takeover, a fence window,
// then Leases.MarkOpen). Each call folds what the others wrote since its
// last call — with HEADs, from the "fold" summary every WAL PUT writes as
// user metadata — and writes its batch at the first empty slot, losing
// races to other writers' batches, which it folds before it tries the next
// slot. Nothing runs between calls, which suits a process frozen between
// requests (a Lambda environment). Its transactions live in the bucket, in
// a record per transaction (meta/txns/{pchannel}/{id}.json) that any
// SharedWriter of the pchannel, in any process, appends to by CAS; the
// commit seals the record by CAS, then writes it as one batch like
// Writer.CommitTxn, and CollectTxns (the maintenance round) deletes
// records no call will finish. WriterConfig.Takeover makes OpenWriter
// take a live lease over; the old holder is fenced.
//
// Timeticks are physical_ms<<18 | logical, strictly increasing along the
// pchannel, across failovers too. Sync returns a tick below which every
// batch is acknowledged and above which every later message lies. One
// timetick-only batch closes each run of data; idle time is never written.
//
// A Scanner reads one pchannel in offset order (one goroutine at a time):
// from segments below the checkpoint (through a SegmentReader), then the
// WAL, delivering a batch only if its term is at least every earlier
// slot's (TermFilter) and never a fence or filler. At the tail it is woken
// by an in-process writer (TailWaiter) or probes the next slot with bounded
// backoff; NoWait returns ErrTail instead (after the same checkpoint
// re-read: a missing slot below the checkpoint was collected, and the scan
// goes on from segments). A PauseGate holds scanners back
// during a node's startup delay. A segment file its checkpoint names but
// the store no longer has (ErrSegmentMissing: compaction retired it and GC
// deleted it after the grace) makes the Scanner re-read the checkpoint and
// reopen the segments at its next ID; only a missing file of the current
// checkpoint is an error. A start below the trim point (Checkpoint.Trim,
// or ScannerConfig.Trim, a vchannel's) fails with a TruncatedError naming
// the earliest readable position, and so does a scan that a trim passed
// when it re-reads the checkpoint; earliest starts at that position.
// Every checkpoint read of a Scanner goes through a CheckpointCache (its
// own, or ScannerConfig.Checkpoints shared by a node's scanners): a
// conditional GET that downloads the record only when it changed.
//
//	w, err := segmentlog.OpenWriter(ctx, segmentlog.WriterConfig{PChannel: "p0"}, store, leases)
//	acks, err := w.Append(ctx, segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v1", Payload: p})
//	sc, err := segmentlog.NewScanner(ctx, segmentlog.ScannerConfig{PChannel: "p0", From: segmentlog.AtID(acks[0].ID)}, store)
//	d, err := sc.Next(ctx) // d.ID == acks[0].ID
//	err = w.Close(ctx)     // releases the lease with the ack frontier as the tail
//
// # Batch object, format version 1
//
// A pchannel is a sequence of slots wal/{pchannel}/{offset}; each holds one
// immutable batch object: a fixed 64-byte header, a body of Count messages,
// and a CRC32C trailer. Fixed-width integers are little-endian; "uvarint" is
// encoding/binary's unsigned varint in its shortest form; "str" is a uvarint
// byte length followed by that many bytes of UTF-8.
//
//	0      4     5      6       8        16       24                40         48        56      60         64
//	+------+-----+------+-------+--------+--------+-----------------+----------+---------+-------+----------+
//	|"CWAL"| ver | kind | flags |  term  | offset |      nonce      | first_tt | last_tt | count | body_len |
//	+------+-----+------+-------+--------+--------+-----------------+----------+---------+-------+----------+
//	| body: count messages, back to back                                                       | crc32c (4) |
//	+------------------------------------------------------------------------------------------+------------+
//	64                                                                                         64+body_len  68+body_len = object size
//
//	offset size field     meaning
//	     0    4 magic     "CWAL" (43 57 41 4c)
//	     4    1 version   1; bytes 0-4 mean the same in every version
//	     5    1 kind      1 data, 2 fence, 3 filler, 4 tombstone (BatchKind)
//	     6    2 flags     0 in version 1; any other value is corruption
//	     8    8 term      lease term of the writer
//	    16    8 offset    the slot this object was written to
//	    24   16 nonce     the writer's lease nonce (UUID bytes); one per term
//	    40    8 first_tt  timetick of the first message; 0 if count is 0
//	    48    8 last_tt   timetick of the last message; 0 if count is 0
//	    56    4 count     number of messages
//	    60    4 body_len  length of the body in bytes
//	    64    * body      count messages, back to back, nothing after them
//	     *    4 crc       CRC-32C (Castagnoli) of every byte before it
//
// The header repeats first_tt, last_tt and count so that readers can filter
// batches by timetick, and skip fences and fillers, from the header alone
// (DecodeHeader, for instance on a ranged GET of the first 64 bytes).
//
// A message:
//
//	+------+-------+----------+----------+--------+----------+---------+---------+--------------+------------+-----------+
//	| type | flags | timetick | vchannel | txn_id | producer |  epoch  |   seq   | broadcast_id | properties |  payload  |
//	|  u8  |   u8  |   u64    |   str    |  u64   |   str    | uvarint | uvarint |     str      | see below  | see below |
//	+------+-------+----------+----------+--------+----------+---------+---------+--------------+------------+-----------+
//	                                     \ bit 0 /\ flags bit 1: idempotency key \ flags bit 2 /
//	                                     optional fields, present when their flag bit is set
//
//	properties = uvarint n, then n × (key str, value str), keys strictly increasing (bytewise)
//	payload    = uvarint length, then that many bytes
//
//	type      1 data, 2 insert, 3 delete (data messages); 16 timetick,
//	          17 txn_begin, 18 txn_commit, 19 txn_rollback, 20 broadcast,
//	          21 flush, 22 create_vchannel, 23 drop_vchannel (control messages)
//	flags     bit 0: txn_id present, bit 1: idempotency key present,
//	          bit 2: broadcast ID present; other bits must be 0
//
// # Rules
//
// Encoding checks these rules and refuses to write a batch that breaks one
// (the error wraps ErrTooLarge for a limit, and describes the rule
// otherwise); decoding checks them again and reports a breach as ErrCorrupt.
// Whatever decodes therefore re-encodes to the very same bytes: every batch
// has exactly one encoding.
//
//   - kind is one of the four kinds; fence, filler and tombstone batches
//     have count 0, body_len 0 and both timeticks 0. A data batch has 1 to
//     MaxMessages messages.
//   - The object is at most MaxBatchBytes; its length is exactly
//     68+body_len (a truncated object or trailing bytes are corruption), and
//     the CRC matches.
//   - Message timeticks are non-zero and strictly increase within a batch;
//     first_tt and last_tt equal the first and last message's.
//   - type is one of the types above. vchannel is non-empty except for
//     timetick messages. txn_begin, txn_commit and txn_rollback carry a
//     transaction ID; a broadcast message carries a broadcast ID.
//   - An optional field is present exactly when its flag is set, and a
//     present field is non-zero (txn_id != 0, producer and broadcast ID
//     non-empty). So a Message with TxnID 0, a zero Key or an empty
//     BroadcastID encodes without the field. A Key with no Producer must
//     have Epoch and Seq 0.
//   - Every str is valid UTF-8 of at most MaxStringLen bytes; property keys
//     are non-empty, unique, and sorted in the bytes (Encode sorts them).
//   - Uvarints are in their shortest form.
//
// Decoding normalizes: empty Properties and an empty Payload decode as nil
// (nil and empty encode alike), and a batch without messages has nil
// Messages.
//
// # Versions
//
// The version 1 format above never changes in place: the golden files in
// testdata/ hold canonical objects, and TestGolden fails if a byte of their
// encoding changes. A new format gets a new version number and a decoder
// beside version 1's, which stays able to read every object already in a
// bucket. A decoder given a version it does not know fails with an error
// that wraps ErrCorrupt and says "unsupported version N".
//
// # Checkpoint record, format 2
//
// {prefix}/meta/checkpoints/{pchannel}.json, the JSON form of Checkpoint,
// replaced only by CAS. Format 2 moved the idempotency window out of the
// record ("dedup", inline keys) into a dedup state object the record
// names ("dedup_state"; dedup_state.go draws its bytes), so the record's
// size follows vchannels, not messages; format-1 records are still read. Fields are only ever added, each omitted when
// empty, and CheckpointFormat changes only when a reader that ignores an
// added field would lose or corrupt data. "retired" (a list of {key,
// retired_at}) was added with segment compaction. A binary older than it
// ignores the field when reading, so it reads the manifest, flushes and
// recovers exactly as before; but its flusher writes the next version
// without "retired", and its GC does not treat retired files as roots, so
// it deletes them at once (they are old). Nothing the current manifest
// names is affected: only the grace for readers and snapshots cut from an
// older manifest is lost. Enable compaction once no older binary flushes
// or collects the bucket. "trim" ({offset, index}, the trim point) was
// added with trims: an older binary drops it on its next write, which
// makes trimmed messages readable again but loses nothing. "retired" is
// no longer written: it grew with the flush rate (every file compaction
// took out stayed listed for the orphan age), so retired files now go to
// retired list objects of their own (package snapshot, RetiredList) and
// the record stays the size of its manifest, whatever the message rate.
// A record that still carries "retired" is read, its entries are carried
// over by every writer and honoured by GC until they expire; the format
// stays 2, since no field changed meaning. A binary that writes "retired"
// does not know the lists: its GC deletes the files they protect once
// they are old, the loss of grace described above.
//
// # Example
//
//	b := segmentlog.Batch{Kind: segmentlog.KindData, Term: 3, Offset: 17, Nonce: nonce,
//		Messages: []segmentlog.Message{{
//			Type: segmentlog.TypeInsert, VChannel: "coll-1-v0", TimeTick: tt, Payload: rows,
//		}}}
//	buf, err := b.AppendEncode(buf[:0]) // reuse buf across appends
//	...
//	got, err := segmentlog.DecodeBatch(buf) // errors.Is(err, segmentlog.ErrCorrupt) on bad bytes
package segmentlog
