// Package cache holds the write-ahead cache and the in-process tail
// notification of Cairn: what lets a reader in the same process as a
// pchannel's writer follow the tail from memory, without touching the store.
//
// # Write-ahead cache
//
// Cache[V] keeps recently acknowledged batches, keyed by (pchannel, offset),
// each stored with the term that wrote it, within a byte budget
// (DefaultLocalBytes for a node, DefaultLambdaBytes in a Lambda container).
// It is built on ristretto and generic over the batch type: segmentlog
// declares the small interface it needs, and this package does not import
// it. The rules of docs/protocol.md ("Reading", rule 4) map onto it as follows:
//
//   - filled at ack, not at PUT success: the writer calls Put only for
//     acked batches, cost = the encoded size;
//   - keyed by (offset, term): Get returns the term with the batch, and the
//     reader applies its term rule to it as to a batch read from the store;
//   - dropped on lease loss: DropTerm(pchannel, term) hides that pchannel's
//     entries of term ≤ term at once and refuses later Puts of them;
//   - a miss reads the store.
//
// Two layers share the budget. Ristretto alone would serve a tail reader
// badly: its Set is asynchronous, so the batch just acked is not visible yet
// when the reader it wakes calls Get, and once the cache is full its TinyLFU
// admission policy turns most new entries away (a batch nobody has read has
// no recorded frequency). So the recent layer sits in front: per pchannel,
// the entries Put last (Config.RecentEntries, default 128, within
// Config.RecentBytes over all pchannels, default MaxBytes/4), filled
// synchronously and visible to the very next Get. When it overflows, its
// oldest entries move on to ristretto, which holds the rest of the budget
// (MaxBytes − RecentBytes) and keeps older history for catching-up readers
// as far as its policy allows. Get looks in the recent layer, then in
// ristretto; a hit in either counts in Stats.Hits.
//
// The cache is an optimisation, never the source of truth: any entry may be
// missing at any time — pushed out of the recent layer and turned away or
// evicted by ristretto, still in ristretto's queue (Wait applies it), or
// hidden by DropTerm. What a hit returns, though, is always exactly the
// value Put last at that (pchannel, offset), of a term not dropped:
// ristretto identifies entries by a 64-bit hash, so every entry carries its
// full key and Get checks it; DropTerm empties the recent layer of the
// dropped terms at once and hides them in ristretto; and a key Put again
// is purged from ristretto before the new entry can reach it.
//
// # Tail notification
//
// Tail carries each pchannel's ack frontier (the next offset to be acked)
// from the writer to in-process readers. Publish raises it and wakes the
// readers blocked in Wait; Forget (lease lost) wakes them with ErrNoWriter,
// which tells them to long-poll the store instead.
//
// # Concurrency
//
// Cache and Tail are safe for concurrent use by any number of goroutines.
// A Put is visible to every Get that starts after it returned true, unless
// the entry was too large for the recent layer (see Cache.Put).
// Cache.Close waits for calls in progress; afterwards Put refuses and Get
// misses. A Cache owns ristretto goroutines until it is closed; a Tail owns
// none and needs no closing.
//
// # Example
//
// The writer of a pchannel, when the batch at offset off of term is acked:
//
//	c.Put(p, off, term, batch, int64(len(encoded))) // visible at once
//	tail.Publish(p, off+1)
//
// and when it loses its lease:
//
//	c.DropTerm(p, term)
//	tail.Forget(p)
//
// A reader at position next:
//
//	for {
//		frontier, err := tail.Wait(ctx, p, next) // at once if next is acked
//		if errors.Is(err, cache.ErrNoWriter) {
//			// no writer in this process: long-poll the store from next
//		} else if err != nil {
//			return err
//		}
//		for ; next < frontier; next++ {
//			b, term, ok := c.Get(p, next)
//			if !ok {
//				b, term = readStore(p, next) // a miss reads the store
//			}
//			deliver(b, term) // after the term check of docs/protocol.md
//		}
//	}
package cache
