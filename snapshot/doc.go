// Package snapshot turns a pchannel's WAL into Arrow segments and manages
// what the segments make possible (docs/protocol.md, "Flush, truncation, GC" and
// "Snapshots, restore, drop"):
//
//   - Flusher writes one Arrow IPC file per vchannel and advances the flush
//     checkpoint by CAS, on size/age thresholds (Run) or on demand
//     (FlushNow);
//   - Compactor merges runs of a vchannel's small segment files into one
//     and swaps them in the manifest by CAS, so the checkpoint stays
//     bounded (Compact, or Run beside a flusher);
//   - SegmentReader serves reads below the checkpoint from those files;
//     segmentlog.Scanner uses it through ScannerConfig.Segments and hands
//     over to the WAL at C;
//   - GC deletes WAL objects below the truncation point, orphan segment
//     files, and segment files compaction retired once their grace is
//     over;
//   - Snapshots creates, lists, describes and drops snapshots (immutable
//     manifests over segments) and runs restore jobs;
//   - Trim and Retention make the data below a position, or beyond a
//     policy, unreadable; GC then retires and deletes it.
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
// included), LastTimeTick and the idempotency window are folded exactly as
// Writer recovery folds them (segmentlog.DedupFold), and the manifest gains
// the new files. The window goes to a dedup state object
// (Layout.DedupState, written with PutIfAbsent before the CAS) that the
// record names in DedupState; the flusher keeps the window it committed in
// memory and reads the object back only when another flusher wrote the
// checkpoint it starts from, and folds a round's keys only when the round
// commits, so a look that flushes nothing never touches it. After its CAS
// it deletes the object the replaced record named. Segments are reachable only through the
// manifest.
//
// Two flushers racing from one checkpoint both write their files (the keys
// differ by flush ID); one CAS wins, the other fails and its files are
// orphans, deleted by GC after OrphanAge. So the checkpoint never skips,
// repeats or goes back. A CAS whose reply is lost is resolved by reading the
// record back and looking for this flush's segment keys; the identical
// conditional write is resent only while the record still has the ETag the
// flush started from. This CAS and every other record update of the package
// (records.go: update) go through cas.Update, whose policy for a write of
// unknown outcome docs/protocol.md ("Records") states; retries pause through
// infra/backoff.
//
// # Truncation and GC
//
// The truncation point of a pchannel is the lowest of its checkpoint C and
// every Retainer (per-vchannel positions, broadcasts not yet acked, and
// whatever else still needs WAL below C). WAL objects below it are deleted
// once older than MinAge, except the segmentlog.FenceWindow slots from every term change in
// the checkpoint: a zombie writer may hold up to W PUTs, all aimed at or
// after its ack frontier, which is at or below the next term's fence, so
// after any pause each of its late PUTs meets an existing object and is
// refused. Garbage inside those windows may shrink to a tombstone
// (PutIfMatch). Segment files named by no checkpoint manifest, no snapshot
// that is not released and no restore job that is running or done are
// deleted once older than OrphanAge; a file a retired list names (or a
// record written before retired lists, in its inline Retired) counts as
// named until OrphanAge after its RetiredAt, and PruneRetired then deletes
// the list (and drops the inline entry by CAS, re-reading on a lost race).
//
// # Retired lists
//
// A file compaction or RetireTrimmed takes out of the manifest is not
// recorded in the checkpoint, which would then grow with the flush rate:
// each such commit first writes a RetiredList,
// {prefix}/meta/retired/{pchannel}/{written:020d}-{id}.json, with
// PutIfAbsent, and then makes its CAS. GC finds the lists by listing that
// prefix, always after reading every checkpoint: a manifest read without a
// file was written after the file's list, so the listing sees it. A list
// only protects: GC deletes a file only as an orphan no checkpoint,
// snapshot or restore job names, so the list of a merge whose CAS lost
// (its files still in the manifest) never costs a live file; it expires
// like the others. Lists are immutable, and a GC reads each once.
//
// # Trim and retention
//
// Trim raises a pchannel's trim point in its checkpoint by CAS (only up:
// idempotent, monotone); readers refuse positions below it
// (segmentlog.TruncatedError). GC.RetireTrimmed moves the manifest's files
// wholly below it, or below their vchannel's point (GCConfig.Trims), to
// a retired list, so the retirement grace and the snapshot roots above
// decide when they go. Retention applies the stored policies (SetPolicy: max age by the
// files' write times, max bytes of files) by trimming; HeldBy says what a
// pchannel or vchannel holds. A snapshot holds, per vchannel, what a reader
// of it gets from earliest (Snapshot.Starts).
//
// # Compaction
//
// Every flush round appends one reference per vchannel to the manifest.
// A Compactor keeps it bounded: per vchannel it finds runs of references
// consecutive in the manifest (ascending, not overlapping) holding at most
// TargetBytes (64 MiB) together, at least MinFiles (8), whose largest file
// is no larger than the others together (size-tiered: a byte is rewritten
// at most log2(TargetBytes/smallest file) times). It decodes the run's
// files, checks them against their references, writes one merged file
// {first}-{last}-{compactionID}.arrow with PutIfAbsent, and at once
// replaces the run in the checkpoint by PutIfMatch, after writing the
// run's keys, with the time, as a retired list: the merged reference
// takes the run's place, and C, MaxTerm, TermChanges, LastTimeTick,
// DedupState, Retired, Trim and FlushID stay as they are (Version+1). Compaction is not a flush: it never moves C, so
// "new c > current c" (docs/protocol.md "Flush, truncation, GC" rule 2), which
// orders flushers, does not apply; the ETag condition alone makes it a CAS
// on one exact version.
//
// It never takes the files of the current FlushID (a flusher whose CAS
// reply was lost looks for them, holdsFlush; it also looks in the retired
// lists written since its round began),
// nor files outside this pchannel's directory for the vchannel. A lost
// race re-reads the record: the merge is applied again if all its files
// are still named, else abandoned (its file is an orphan). An unknown
// outcome is settled by reading the record back and looking for the
// merged key. A flusher whose CAS meets a record changed only in its
// manifest (compaction, GC) commits its round on top of it instead of
// losing the race.
//
// Both a flush round and a merge commit within CommitWithin (20 min) of
// their first file PUT, or give up and leave their files to GC: GC takes
// an unnamed file older than OrphanAge (1 h) for an orphan, so a commit
// later than that could name a deleted file (docs/protocol.md "Flush" rule 9, S
// ≥ 2 × the longest flush, kept by construction rather than assumed).
//
// Retired files stay for OrphanAge after retirement, for a Scanner or a
// snapshot being cut that holds an older manifest; a Scanner that holds
// one longer meets ErrMissingSegment (it wraps
// segmentlog.ErrSegmentMissing), re-reads the checkpoint and reopens the
// segments at its next ID, which the merged file covers. Snapshot and
// restore manifests are never compacted: they keep naming the old files,
// which stay while they are GC roots (docs/protocol.md "Snapshots" rule 2).
// Like a flush, a merge must take far less than OrphanAge from its file's
// PUT to its CAS (docs/protocol.md S).
//
// # Snapshots and restore
//
// Create(name, vchannels): record pending → pin each vchannel in the
// registry (VChannels) → FlushNow on their pchannels → cut at the new
// checkpoints → manifest of their segment files → committed. Every message
// acked on those vchannels before Create was called is in the snapshot, and
// every message with a timetick ≤ its TimeTick. Drop: deleting → pins
// released → released; the record stays as a tombstone (docs/protocol.md
// "Records"). Restore(id, name, targets) is a job record with state and
// progress, idempotent by id and rolled back on failure; its manifest
// references the snapshot's files, which keeps them after the snapshot is
// dropped. Records: {prefix}/snapshots/{name}.json and
// {prefix}/meta/restores/{id}.json, each changed only by CAS.
//
// # Segment file, format 2
//
// An Arrow IPC file (the "file" format, readable by any Arrow
// implementation), buffers compressed with zstd, record batches of at most
// 16 Ki rows sharing one dictionary per dictionary column, one row per
// message in message-ID order. Schema metadata: "cairn.segment.format" =
// "2", "cairn.pchannel", "cairn.vchannel" ("" for pchannel-wide messages,
// kept under segments/_pchannel/{pchannel}/). docs/segments.md describes
// every column for the tools that query them.
//
//	column        type                       meaning
//	vchannel      dictionary<int32, utf8>    the message's vchannel ("" pchannel-wide)
//	offset        uint64                     WAL slot of the message's batch
//	index         uint32                     position in the batch
//	term          uint64                     term of the batch
//	timetick      uint64                     hybrid timetick (ms << 18 | logical)
//	timestamp     timestamp[ms, UTC]         timetick >> 18
//	type          dictionary<int32, utf8>    segmentlog.MessageType's name
//	type_code     uint8                      segmentlog.MessageType (1 data, 2 insert, 3 delete, 16… control)
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
// place: a new layout gets a new "cairn.segment.format". Readers also read
// format 1 (segment_v1.go: no vchannel, timestamp or type_code column, type
// as its code), which buckets and snapshots keep.
//
// Deliveries read from segments are those the WAL would give, term
// included (the term column). Pchannel-wide messages (timeticks with no
// vchannel) are served only to readers of every vchannel.
//
// # Concurrency
//
// Flusher, Compactor, SegmentReader, GC and Snapshots are safe for
// concurrent use, and
// any number of them in any number of processes may work on one pchannel at
// once, beside its writer: the store's conditional writes are the only
// synchronisation. An iterator from SegmentReader.Open is not safe for
// concurrent use.
//
// # Example
//
//	f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: "p0", Layout: layout}, store)
//	if err != nil { ... }
//	go f.Run(ctx) // flushes at MinBytes / MinSlots / MaxAge / MaxSlots
//	rounds, err := f.FlushNow(ctx) // or on demand
//
//	sc, err := segmentlog.NewScanner(ctx, segmentlog.ScannerConfig{
//		PChannel: "p0", Layout: layout, From: segmentlog.Earliest(),
//		Segments: snapshot.NewSegmentReader(store, 0), // below the checkpoint
//	}, store)
//
//	c, err := snapshot.NewCompactor(snapshot.CompactConfig{PChannel: "p0", Layout: layout}, store)
//	go c.Run(ctx) // merges once the manifest names MinRefs files
//
//	gc, err := snapshot.NewGC(snapshot.GCConfig{Layout: layout}, store)
//	err = gc.Collect(ctx) // from a scheduled job
//
//	snaps, err := snapshot.NewSnapshots(snapshot.SnapshotsConfig{Layout: layout}, store, registry)
//	snap, err := snaps.Create(ctx, "nightly", []string{"coll-1-v0", "coll-1-v1"})
//	job, err := snaps.Restore(ctx, jobID, "nightly", map[string]string{"coll-1-v0": "coll-2-v0", "coll-1-v1": "coll-2-v1"})
package snapshot
