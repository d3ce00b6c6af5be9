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
// It has two layers. The recent layer holds, per pchannel, the entries Put
// last (Config.RecentEntries, within Config.RecentBytes over all pchannels):
// Put fills it synchronously, so the next Get sees the entry, and nothing in
// it is refused for being new. What overflows it moves on to ristretto,
// which holds the rest of the budget under its admission policy.
//
// The cache is an optimisation, never the source of truth. An entry may be
// missing at any time — refused, overflowed out of the recent layer and then
// rejected by ristretto's admission policy or not yet applied (ristretto's
// Set is asynchronous), evicted, or hidden by DropTerm — and a reader that
// misses reads the store. What a hit returns is always exactly what was Put
// last under that (pchannel, offset), with its term.
//
// A Cache is safe for concurrent use by any number of goroutines, Close
// included: Close waits for the calls in progress, and after it Put refuses,
// Get misses and Wait returns at once.
type Cache[V any] struct {
	rc       *ristretto.Cache[uint64, entry[V]]
	seed     maphash.Seed
	hash     func(pchannel string, offset uint64) uint64 // c.key; tests force collisions
	maxBytes int64                                       // budget (defaults applied)
	rcBytes  int64                                       // ristretto's share: maxBytes − recentMax
	overhead int64                                       // charged per entry on top of the caller's cost
	metrics  bool

	recentMax     int64 // the recent layer's share of the budget
	recentEntries int   // the recent layer's bound per pchannel

	// recentMu guards recent. Put holds it while it hands overflow to
	// ristretto, so that ristretto sees the Sets and Dels of one key in the
	// order of the Puts.
	recentMu sync.RWMutex
	recent   recent[V]

	// floors maps a pchannel name to its *floor: the lowest term still
	// served. Written by DropTerm, read on every hit and every Put.
	floors sync.Map

	// Counters of our own; see Stats.
	stale      atomic.Int64 // ristretto hits we turned into misses (key mismatch, dropped term)
	recentHits atomic.Int64 // hits served by the recent layer
	recentMiss atomic.Int64 // recent entries of a dropped term met by Get (counted as misses)
	refused    atomic.Int64 // Puts refused before reaching ristretto
	dropped    atomic.Int64 // Sets ristretto dropped (set buffer full)
	rejected   atomic.Int64 // Sets ristretto's admission policy rejected
	evictions  atomic.Int64 // entries evicted to make room (by ristretto, or too large for it)

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
	// Hits and Misses count Get calls, over both layers; they stay zero
	// unless Config.Metrics is set. A slot holding another key, or an entry
	// of a dropped term, counts as a miss.
	Hits, Misses int64
	// Bytes is the cost held now in both layers (caller costs plus
	// per-entry overhead); never above MaxBytes once Wait has returned.
	Bytes int64
	// Evictions counts entries removed to make room for others. An entry
	// moving from the recent layer to ristretto is not evicted (yet).
	Evictions int64
	// Rejected counts entries that did not enter the cache, or left the
	// recent layer for ristretto and did not enter it: refused up front
	// (too large, dropped term, negative cost), dropped by ristretto under
	// contention, or turned away by its admission policy.
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
		seed:          maphash.MakeSeed(),
		maxBytes:      cfg.MaxBytes,
		rcBytes:       cfg.MaxBytes - cfg.RecentBytes,
		overhead:      int64(reflect.TypeFor[entry[V]]().Size()) + bookkeepingBytes,
		metrics:       cfg.Metrics,
		recentMax:     cfg.RecentBytes,
		recentEntries: cfg.RecentEntries,
		recent:        newRecent[V](),
	}
	rc, err := ristretto.NewCache(&ristretto.Config[uint64, entry[V]]{
		NumCounters: cfg.NumCounters,
		MaxCost:     c.rcBytes,
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
// Put reports false when the entry is refused: cost is negative or above
// Largest, the cache is closed, or term was dropped for pchannel (DropTerm).
// True means the entry is in the recent layer, where every Get from now on
// sees it until newer Puts push it on to ristretto — or, for an entry too
// large for the recent layer, that ristretto took it for asynchronous
// processing (a Get right after may still miss; Wait makes it visible unless
// ristretto's admission policy turns it away).
//
// An entry already cached under (pchannel, offset) is replaced.
func (c *Cache[V]) Put(pchannel string, offset, term uint64, v V, cost int64) bool {
	if cost < 0 || cost > c.Largest() || term < c.floor(pchannel) {
		c.refused.Add(1)
		return false
	}
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed {
		return false
	}
	n := &recentNode[V]{
		entry:   entry[V]{pchannel: pchannel, offset: offset, term: term, value: v},
		charged: cost + c.overhead,
	}
	c.recentMu.Lock()
	defer c.recentMu.Unlock()
	if term < c.floor(pchannel) { // DropTerm ran since the check above
		c.refused.Add(1)
		return false
	}
	if old, ok := c.recent.index[recentKey{pchannel, offset}]; ok {
		c.recent.remove(old)
	}
	if offset < c.recent.channel(pchannel).handed {
		// A replacement (a WAL writer acks each offset once, in order, so
		// this is rare): ristretto may hold or have queued an older entry
		// of this key, and once this one is in the recent layer, no Get
		// may see that one any more. A Set does not replace an entry still
		// queued (ristretto's policy rejects a second add of a key), so
		// delete the key and wait until the queue, Del included, is
		// applied: ristretto then holds nothing of it.
		c.rc.Del(c.hash(pchannel, offset))
		c.rc.Wait()
	}
	if n.charged > c.recentMax {
		// Too large for the recent layer: straight to ristretto.
		return c.handLocked(n)
	}
	c.recent.push(n)
	for old := c.recent.popOverflow(pchannel, c.recentEntries, c.recentMax); old != nil; old = c.recent.popOverflow(pchannel, c.recentEntries, c.recentMax) {
		c.handLocked(old)
	}
	return true
}

// handLocked passes n on to ristretto — n overflowed the recent layer, or is
// too large for it — and reports whether ristretto took it for processing.
// Entries of a dropped term go nowhere. c.recentMu must be held.
func (c *Cache[V]) handLocked(n *recentNode[V]) bool {
	ch := c.recent.channel(n.pchannel)
	ch.handed = max(ch.handed, n.offset+1)
	switch {
	case n.term < c.floor(n.pchannel):
		return false
	case n.charged > c.rcBytes:
		// It fitted the recent layer but not ristretto's share: it leaves
		// the cache to make room.
		c.evictions.Add(1)
		return false
	case !c.rc.Set(c.hash(n.pchannel, n.offset), n.entry, n.charged):
		c.dropped.Add(1)
		return false
	}
	return true
}

// Largest is the largest cost Put accepts: the entry, with the per-entry
// overhead, must fit the recent layer or ristretto's share of the budget.
func (c *Cache[V]) Largest() int64 {
	return max(c.recentMax, c.rcBytes) - c.overhead
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
	c.recentMu.RLock()
	n, inRecent := c.recent.index[recentKey{pchannel, offset}]
	if inRecent {
		v, term = n.value, n.term
	}
	c.recentMu.RUnlock()
	if inRecent {
		if term < c.floor(pchannel) {
			// Dropped while we looked (DropTerm removes such entries). The
			// newest Put of this key is of a dropped term: whatever
			// ristretto holds is older still.
			c.recentMiss.Add(1)
			var zero V
			return zero, 0, false
		}
		c.recentHits.Add(1)
		return v, term, true
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
// (docs/protocol.md, "Reading" rule 4). Entries of higher terms stay visible.
// The recent layer frees hidden entries at once; ristretto frees them
// lazily, when a Get meets them or by eviction. Floors only rise: dropping a
// lower term than before is a no-op.
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
			break
		}
	}
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed {
		return
	}
	c.recentMu.Lock()
	defer c.recentMu.Unlock()
	c.recent.dropBelow(pchannel, fl.term.Load())
}

// Wait blocks until ristretto has applied (admitted or rejected) every entry
// handed to it before Wait was called: those that overflowed the recent
// layer, and those too large for it. Entries in the recent layer need no
// Wait. Tests use it.
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
	c.recentMu.RLock()
	recentBytes := c.recent.bytes
	c.recentMu.RUnlock()
	s := Stats{
		Bytes:     recentBytes + c.rc.MaxCost() - c.rc.RemainingCost(),
		Evictions: c.evictions.Load(),
		Rejected:  c.refused.Load() + c.dropped.Load() + c.rejected.Load(),
	}
	if c.metrics && c.rc.Metrics != nil {
		stale := c.stale.Load()
		s.Hits = c.recentHits.Load() + int64(c.rc.Metrics.Hits()) - stale
		s.Misses = c.recentMiss.Load() + int64(c.rc.Metrics.Misses()) + stale
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
	c.recentMu.Lock()
	c.recent.clear()
	c.recentMu.Unlock()
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
