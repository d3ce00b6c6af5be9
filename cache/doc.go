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
// it. The rules of PROTOCOL.md ("Reading", rule 4) map onto it as follows:
//
//   - filled at ack, not at PUT success: the writer calls Put only for
//     acked batches, cost = the encoded size;
//   - keyed by (offset, term): Get returns the term with the batch, and the
//     reader applies its term rule to it as to a batch read from the store;
//   - dropped on lease loss: DropTerm(pchannel, term) hides that pchannel's
//     entries of term ≤ term at once and refuses later Puts of them;
//   - a miss reads the store.
//
// The cache is an optimisation, never the source of truth: any entry may be
// missing at any time. In particular ristretto applies Set asynchronously, so
// a Get right after Put may miss (Wait makes earlier Puts visible), and its
// TinyLFU admission policy may turn a new entry away when the cache is full.
// What a hit returns, though, is always exactly the value Put at that
// (pchannel, offset): ristretto identifies entries by a 64-bit hash, so
// every entry carries its full key and Get checks it.
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
// Cache.Close waits for calls in progress; afterwards Put refuses and Get
// misses. A Cache owns ristretto goroutines until it is closed; a Tail owns
// none and needs no closing.
//
// # Example
//
// The writer of a pchannel, when the batch at offset off of term is acked:
//
//	c.Put(p, off, term, batch, int64(len(encoded)))
//	c.Wait() // optional: lets the readers woken next hit the cache
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
//			deliver(b, term) // after the term check of PROTOCOL.md
//		}
//	}
package cache
