package segmentlog

import (
	"math"
	"time"
)

// dedupWindow remembers idempotency keys (producer, epoch, seq) and the ID
// each was acked at, for maxAge and at most maxKeys keys (docs/protocol.md,
// "Append" rule 5). Broadcast keys (broadcastKey) are kept apart: for
// BroadcastRetention, whatever the count, because a broadcast task may be resumed
// long after its first attempt ("Broadcast and coordinator" rule 1). A key
// in flight is pending: a retry waits for the first outcome. Not safe for
// concurrent use; the Writer guards it.
type dedupWindow struct {
	maxAge     time.Duration
	maxKeys    int
	entries    map[IdemKey]*dedupEntry
	order      []IdemKey // committed keys, oldest first; may hold stale keys
	bcastOrder []IdemKey // committed broadcast keys, oldest first
}

type dedupEntry struct {
	id   MessageID
	tick uint64
	done bool
	err  error         // set when the pending append failed
	wait chan struct{} // closed when the outcome is known
}

func newDedupWindow(maxAge time.Duration, maxKeys int) *dedupWindow {
	return &dedupWindow{maxAge: maxAge, maxKeys: maxKeys, entries: make(map[IdemKey]*dedupEntry)}
}

// lookup returns the entry of key, committed or pending.
func (d *dedupWindow) lookup(key IdemKey) (*dedupEntry, bool) {
	e, ok := d.entries[key]
	return e, ok
}

// begin marks key pending and returns its entry.
func (d *dedupWindow) begin(key IdemKey) *dedupEntry {
	e := &dedupEntry{wait: make(chan struct{})}
	d.entries[key] = e
	return e
}

// commit records that key was acked at id with tick, waking waiters.
func (d *dedupWindow) commit(key IdemKey, id MessageID, tick uint64, now time.Time) {
	e, ok := d.entries[key]
	if !ok {
		e = &dedupEntry{wait: make(chan struct{})}
		d.entries[key] = e
	}
	if e.done {
		return
	}
	e.id, e.tick, e.done = id, tick, true
	close(e.wait)
	if isBroadcastKey(key) {
		d.bcastOrder = append(d.bcastOrder, key)
	} else {
		d.order = append(d.order, key)
	}
	d.evict(now)
}

// fail forgets a pending key whose append did not get acked, waking waiters
// with err. The key may be appended again (by a later writer).
func (d *dedupWindow) fail(key IdemKey, err error) {
	e, ok := d.entries[key]
	if !ok || e.done {
		return
	}
	e.err = err
	close(e.wait)
	delete(d.entries, key)
}

// evict drops committed keys older than maxAge or beyond maxKeys, and
// broadcast keys older than BroadcastRetention.
func (d *dedupWindow) evict(now time.Time) {
	d.order = d.evictFrom(d.order, TickOf(now.Add(-d.maxAge)), d.maxKeys)
	d.bcastOrder = d.evictFrom(d.bcastOrder, TickOf(now.Add(-BroadcastRetention)), math.MaxInt)
}

// evictFrom drops the oldest keys of order while they are older than
// oldest or more than maxKeys remain, and returns what is left.
func (d *dedupWindow) evictFrom(order []IdemKey, oldest uint64, maxKeys int) []IdemKey {
	n := 0
	for n < len(order) {
		e, ok := d.entries[order[n]]
		if ok && e.done && e.tick >= oldest && len(order)-n <= maxKeys {
			break
		}
		if ok && e.done {
			delete(d.entries, order[n])
		}
		n++
	}
	if n > 0 {
		order = append(order[:0], order[n:]...)
	}
	return order
}

// restore loads a checkpoint's snapshot.
func (d *dedupWindow) restore(entries []DedupEntry, now time.Time) {
	for _, e := range entries {
		d.commit(e.Key, e.ID, e.TimeTick, now)
	}
}

// snapshot lists the committed keys, oldest first: the plain keys, then
// the broadcast keys (restore sorts them into their lists again, each in
// its order).
func (d *dedupWindow) snapshot() []DedupEntry {
	out := make([]DedupEntry, 0, len(d.order)+len(d.bcastOrder))
	for _, order := range [][]IdemKey{d.order, d.bcastOrder} {
		for _, k := range order {
			if e, ok := d.entries[k]; ok && e.done {
				out = append(out, DedupEntry{Key: k, ID: e.id, TimeTick: e.tick})
			}
		}
	}
	return out
}
