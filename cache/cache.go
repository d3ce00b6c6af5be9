package cache

import (
	"fmt"
	"hash/maphash"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/ristretto/v2"
)

// bufferItems is ristretto's per-stripe Get buffer size; 64 is its
// recommended value.
const bufferItems = 64

// bookkeepingBytes approximates what ristretto spends per entry besides the
// entry itself: its stored key, conflict hash and expiration, the slot in its
// sharded map and the key/cost pair of its eviction policy. It is charged on
// top of the caller's cost so that the budget bounds memory, not just payload.
const bookkeepingBytes = 96

// Cache is the write-ahead cache: the batches a writer has acknowledged,
// keyed by (pchannel, offset), each stored with the term that wrote it, held
// within a memory budget. V is the caller's batch type; the cache never
// looks inside it.
//
// The cache is an optimisation, never the source of truth. An entry may be
// missing at any time — not yet applied (Put is asynchronous), refused,
// rejected by the admission policy, evicted, or hidden by DropTerm — and a
// reader that misses reads the store. What a hit returns is always exactly
// what was Put under that (pchannel, offset), with its term.
//
// A Cache is safe for concurrent use by any number of goroutines, Close
// included: Close waits for the calls in progress, and after it Put refuses,
// Get misses and Wait returns at once.
type Cache[V any] struct {
	rc       *ristretto.Cache[uint64, entry[V]]
	seed     maphash.Seed
	hash     func(pchannel string, offset uint64) uint64 // c.key; tests force collisions
	maxBytes int64                                       // budget (defaults applied)
	overhead int64                                       // charged per entry on top of the caller's cost
	metrics  bool

	// floors maps a pchannel name to its *floor: the lowest term still
	// served. Written by DropTerm, read on every hit and every Put.
	floors sync.Map

	// Counters of our own; see Stats.
	stale     atomic.Int64 // ristretto hits we turned into misses (key mismatch, dropped term)
	refused   atomic.Int64 // Puts refused before reaching ristretto
	dropped   atomic.Int64 // Sets ristretto dropped (set buffer full)
	rejected  atomic.Int64 // Sets ristretto's admission policy rejected
	evictions atomic.Int64 // entries ristretto evicted to make room

	// closeMu makes Close exclusive: ristretto panics (send on a closed
	// channel) if Set, Del, Wait or even Get race with its Close.
	closeMu sync.RWMutex
	closed  bool  // guarded by closeMu
	final   Stats // guarded by closeMu; Stats as Close found them
	// closing stops OnEvict from counting the entries Close clears.
	closing atomic.Bool
}

// entry is what ristretto stores. The full key is kept because ristretto
// identifies entries by a 64-bit hash only: two keys that collide share a
// slot, and Get must tell them apart.
type entry[V any] struct {
	pchannel string
	offset   uint64
	term     uint64
	value    V
}

// floor is the lowest valid term of one pchannel.
type floor struct{ term atomic.Uint64 }

// Stats is a snapshot of the cache's counters.
type Stats struct {
	// Hits and Misses count Get calls; they come from ristretto's metrics
	// and stay zero unless Config.Metrics is set. A slot holding another
	// key, or an entry of a dropped term, counts as a miss.
	Hits, Misses int64
	// Bytes is the cost held now (caller costs plus per-entry overhead);
	// never above MaxBytes once Wait has returned.
	Bytes int64
	// Evictions counts entries removed to make room for others.
	Evictions int64
	// Rejected counts Puts that did not enter the cache: refused up front
	// (too large, dropped term, negative cost), dropped by ristretto under
	// contention, or turned away later by its admission policy.
	Rejected int64
}

// New returns an empty cache configured by cfg (zero fields take their
// documented defaults). It starts ristretto's background goroutines: call
// Close when done.
func New[V any](cfg Config) (*Cache[V], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Cache[V]{
		seed:     maphash.MakeSeed(),
		maxBytes: cfg.MaxBytes,
		overhead: int64(reflect.TypeFor[entry[V]]().Size()) + bookkeepingBytes,
		metrics:  cfg.Metrics,
	}
	rc, err := ristretto.NewCache(&ristretto.Config[uint64, entry[V]]{
		NumCounters: cfg.NumCounters,
		MaxCost:     cfg.MaxBytes,
		BufferItems: bufferItems,
		Metrics:     cfg.Metrics,
		// We charge our own per-entry overhead (c.overhead) so that the
		// refusal test in Put and ristretto's agree exactly.
		IgnoreInternalCost: true,
		// The key is already a well-mixed hash (see key); no conflict hash:
		// entries carry their full key instead.
		KeyToHash: func(k uint64) (uint64, uint64) { return k, 0 },
		OnEvict: func(*ristretto.Item[entry[V]]) {
			if !c.closing.Load() {
				c.evictions.Add(1)
			}
		},
		OnReject: func(*ristretto.Item[entry[V]]) { c.rejected.Add(1) },
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	c.rc = rc
	c.hash = c.key
	return c, nil
}

// Put caches v, the batch acknowledged at (pchannel, offset) under term; cost
// is its encoded size in bytes. Call it only once the append is acked (a PUT
// that succeeded but is not yet acked must not be visible to readers).
//
// Put reports false when the entry is refused: cost is negative, cost plus
// the per-entry overhead exceeds MaxBytes, the cache is closed, term was
// dropped for pchannel (DropTerm), or ristretto's set buffer is full. True
// means only that ristretto accepted the entry for processing: Set is
// asynchronous, so a Get right after Put may still miss, and the admission
// policy may yet turn the entry away. Call Wait for read-your-writes.
//
// An entry already cached under (pchannel, offset) is replaced.
func (c *Cache[V]) Put(pchannel string, offset, term uint64, v V, cost int64) bool {
	if cost < 0 || cost > c.maxBytes-c.overhead || term < c.floor(pchannel) {
		c.refused.Add(1)
		return false
	}
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed {
		return false
	}
	e := entry[V]{pchannel: pchannel, offset: offset, term: term, value: v}
	if !c.rc.Set(c.hash(pchannel, offset), e, cost+c.overhead) {
		c.dropped.Add(1)
		return false
	}
	return true
}

// Get returns the batch cached at (pchannel, offset) and the term that wrote
// it. ok is false on a miss; the caller then reads the store. A hit is always
// the value Put under exactly this (pchannel, offset), of a term DropTerm has
// not hidden.
func (c *Cache[V]) Get(pchannel string, offset uint64) (v V, term uint64, ok bool) {
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed {
		return v, 0, false
	}
	k := c.hash(pchannel, offset)
	e, found := c.rc.Get(k)
	if !found {
		return v, 0, false
	}
	if e.pchannel != pchannel || e.offset != offset {
		// Another key hashed to this slot.
		c.stale.Add(1)
		return v, 0, false
	}
	if e.term < c.floor(pchannel) {
		// Its term was dropped. Free the slot; if a fresher entry raced into
		// it meanwhile, that one goes too, which costs one miss.
		c.stale.Add(1)
		c.rc.Del(k)
		return v, 0, false
	}
	return e.value, e.term, true
}

// DropTerm hides every entry of pchannel whose term is ≤ term, and refuses
// later Puts of such terms; call it when the writer of term loses its lease
// (PROTOCOL.md, "Reading" rule 4). Entries of higher terms stay visible.
// Hidden entries are freed lazily, when a Get meets them or by eviction.
// Floors only rise: dropping a lower term than before is a no-op.
func (c *Cache[V]) DropTerm(pchannel string, term uint64) {
	next := term + 1
	if next == 0 { // term was MaxUint64: saturate
		next = term
	}
	f, ok := c.floors.Load(pchannel)
	if !ok {
		f, _ = c.floors.LoadOrStore(pchannel, new(floor))
	}
	fl := f.(*floor)
	for {
		cur := fl.term.Load()
		if cur >= next || fl.term.CompareAndSwap(cur, next) {
			return
		}
	}
}

// Wait blocks until every Put that returned before it has been applied
// (admitted or rejected). Tests use it; a writer that wants its tail readers
// to hit may call it between Put and publishing the new frontier.
func (c *Cache[V]) Wait() {
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed {
		return
	}
	c.rc.Wait()
}

// Stats returns the current counters. After Close it returns those Close
// found, with Bytes 0.
func (c *Cache[V]) Stats() Stats {
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed {
		return c.final
	}
	return c.stats()
}

// stats reads the counters of an open cache; c.closeMu must be held.
func (c *Cache[V]) stats() Stats {
	s := Stats{
		Bytes:     c.rc.MaxCost() - c.rc.RemainingCost(),
		Evictions: c.evictions.Load(),
		Rejected:  c.refused.Load() + c.dropped.Load() + c.rejected.Load(),
	}
	if c.metrics && c.rc.Metrics != nil {
		stale := c.stale.Load()
		s.Hits = int64(c.rc.Metrics.Hits()) - stale
		s.Misses = int64(c.rc.Metrics.Misses()) + stale
	}
	return s
}

// Close releases the cache: its entries and ristretto's goroutines. It waits
// for calls in progress; later calls see a closed, empty cache. Close is
// idempotent.
func (c *Cache[V]) Close() {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed {
		return
	}
	c.final = c.stats()
	c.final.Bytes = 0
	c.closed = true
	c.closing.Store(true)
	c.rc.Close()
}

// floor returns the lowest term of pchannel still served (0 if none was
// dropped).
func (c *Cache[V]) floor(pchannel string) uint64 {
	f, ok := c.floors.Load(pchannel)
	if !ok {
		return 0
	}
	return f.(*floor).term.Load()
}

// key hashes (pchannel, offset) to ristretto's 64-bit key. Only its spread
// matters (ristretto shards by the low bits); collisions are caught by the
// full key kept in the entry.
func (c *Cache[V]) key(pchannel string, offset uint64) uint64 {
	return mix64(maphash.String(c.seed, pchannel) ^ mix64(offset))
}

// mix64 is the SplitMix64 finaliser: a bijection that spreads every input bit
// over the whole word, so consecutive offsets land in unrelated shards.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
