// Package snapshot turns a pchannel's WAL into Arrow segments and keeps the
// bucket tidy: the Flusher writes one Arrow IPC file per vchannel and
// advances the flush checkpoint by CAS; the SegmentReader serves reads below
// the checkpoint from those files (segmentlog.Scanner uses it through
// ScannerConfig.Segments); GC deletes WAL objects below the truncation point
// and orphan segment files. The rules are PROTOCOL.md's "Flush, truncation,
// GC".
//
// # Flush
//
// A flush round reads the checkpoint record and the WAL from its C up to the
// first empty slot (or MaxSlots/MaxBytes), through the one reading rule
// every reader uses (segmentlog.TermFilter seeded with the checkpoint's
// MaxTerm): fence, filler, tombstone and garbage slots are never delivered.
// It groups the delivered messages by vchannel, writes each group as
// {prefix}/segments/{vchannel}/{first}-{last}-{flushID}.arrow with
// PutIfAbsent, then replaces the checkpoint with PutIfMatch on the ETag it
// read (PutIfAbsent when there was none): C moves to the first slot not
// read, MaxTerm and TermChanges record every higher term met (fence slots
// included), LastTimeTick and the idempotency window Dedup are folded
// exactly as Writer recovery folds them (segmentlog.DedupFold), and the
// manifest gains the new files. Segments are reachable only through the
// manifest.
//
// Two flushers racing from one checkpoint both write their files (the keys
// differ by flush ID); one CAS wins, the other fails and its files are
// orphans, deleted by GC after OrphanAge. So the checkpoint never skips,
// repeats or goes back. A CAS whose reply is lost is resolved by reading the
// record back and looking for this flush's segment keys; the identical
// conditional write is resent only while the record still has the ETag the
// flush started from.
//
// # Segment file, format 1
//
// An Arrow IPC file (the "file" format, readable by any Arrow
// implementation), buffers compressed with zstd, record batches of at most
// 16 Ki rows, one row per message in message-ID order. Schema metadata:
// "cairn.segment.format" = "1", "cairn.pchannel", "cairn.vchannel" ("" for
// pchannel-wide messages, kept under segments/_pchannel/{pchannel}/).
//
//	column        type                       meaning
//	offset        uint64                     WAL slot of the message's batch
//	index         uint32                     position in the batch
//	term          uint64                     term of the batch
//	timetick      uint64                     hybrid timetick
//	type          uint8                      segmentlog.MessageType (1 data, 2 insert, 3 delete, 16… control)
//	txn           uint64                     transaction ID, 0 for none
//	key           struct<producer: utf8,     idempotency key; null for none
//	                     epoch: uint64,
//	                     seq: uint64>
//	properties    map<utf8, utf8>            null for none; keys sorted
//	payload       binary                     empty for none
//	broadcast_id  utf8                       null for none
//
// The object's user metadata "crc32c" holds the CRC-32C (Castagnoli) of the
// whole file in decimal; readers check it. The format never changes in
// place: a new layout gets a new "cairn.segment.format".
//
// # Concurrency
//
// Flusher, SegmentReader and GC are safe for concurrent use, and any number
// of them in any number of processes may work on one pchannel at once: the
// store's conditional writes are the only synchronisation. An iterator from
// SegmentReader.Open is not safe for concurrent use.
//
// # Example
//
//	f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: "p0", Layout: layout}, store)
//	if err != nil { ... }
//	go f.Run(ctx) // flushes at MinBytes / MaxAge / MaxSlots
//	rounds, err := f.FlushNow(ctx) // or on demand
//
//	sc, err := segmentlog.NewScanner(ctx, segmentlog.ScannerConfig{
//		PChannel: "p0", Layout: layout, From: segmentlog.Earliest(),
//		Segments: snapshot.NewSegmentReader(store, 0), // below the checkpoint
//	}, store)
package snapshot
