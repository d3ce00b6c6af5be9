package cache

// The recent layer: the entries Put last, held synchronously in front of
// ristretto.
//
// Ristretto alone serves a tail reader badly: Set is asynchronous, so the
// batch a writer has just acked is not yet visible when the reader it wakes
// calls Get, and once the cache is full its TinyLFU admission policy turns
// most new entries away, because a batch nobody has read yet has no recorded
// frequency. The recent layer keeps, per pchannel, the entries Put last, in
// plain maps and lists under a mutex: an entry is visible to the very next
// Get, and nothing is rejected for being new. When it overflows, its oldest
// entry moves on to ristretto, which keeps older history for catching-up
// readers as well as its policy allows.

// recentKey is the full key of an entry.
type recentKey struct {
	pchannel string
	offset   uint64
}

// recentNode is one entry of the recent layer. It sits on two lists: every
// node in Put order (to enforce the byte bound), and its pchannel's nodes in
// Put order (to enforce the per-pchannel count bound).
type recentNode[V any] struct {
	entry[V]
	charged          int64 // cost plus the per-entry overhead
	older, newer     *recentNode[V]
	chOlder, chNewer *recentNode[V]
}

// recentChannel is one pchannel's part of the recent layer.
type recentChannel[V any] struct {
	oldest, newest *recentNode[V]
	n              int
	// handed is one past the highest offset of this pchannel ever handed
	// to ristretto: an offset below it may have an older version there.
	handed uint64
}

// recent is the recent layer of a Cache. Its fields are guarded by the
// Cache's recentMu.
type recent[V any] struct {
	index          map[recentKey]*recentNode[V]
	channels       map[string]*recentChannel[V] // kept when empty: handed must survive
	oldest, newest *recentNode[V]               // every node, in Put order
	bytes          int64                        // sum of charged
}

func newRecent[V any]() recent[V] {
	return recent[V]{index: map[recentKey]*recentNode[V]{}, channels: map[string]*recentChannel[V]{}}
}

// channel returns pchannel's part, creating it.
func (r *recent[V]) channel(pchannel string) *recentChannel[V] {
	ch, ok := r.channels[pchannel]
	if !ok {
		ch = &recentChannel[V]{}
		r.channels[pchannel] = ch
	}
	return ch
}

// push appends n as the newest node, overall and of its pchannel.
func (r *recent[V]) push(n *recentNode[V]) {
	ch := r.channel(n.pchannel)
	n.older, n.newer = r.newest, nil
	if r.newest != nil {
		r.newest.newer = n
	} else {
		r.oldest = n
	}
	r.newest = n
	n.chOlder, n.chNewer = ch.newest, nil
	if ch.newest != nil {
		ch.newest.chNewer = n
	} else {
		ch.oldest = n
	}
	ch.newest = n
	ch.n++
	r.index[recentKey{n.pchannel, n.offset}] = n
	r.bytes += n.charged
}

// remove unlinks n from both lists and the index.
func (r *recent[V]) remove(n *recentNode[V]) {
	ch := r.channels[n.pchannel]
	if n.older != nil {
		n.older.newer = n.newer
	} else {
		r.oldest = n.newer
	}
	if n.newer != nil {
		n.newer.older = n.older
	} else {
		r.newest = n.older
	}
	if n.chOlder != nil {
		n.chOlder.chNewer = n.chNewer
	} else {
		ch.oldest = n.chNewer
	}
	if n.chNewer != nil {
		n.chNewer.chOlder = n.chOlder
	} else {
		ch.newest = n.chOlder
	}
	n.older, n.newer, n.chOlder, n.chNewer = nil, nil, nil, nil
	ch.n--
	delete(r.index, recentKey{n.pchannel, n.offset})
	r.bytes -= n.charged
}

// popOverflow removes and returns the oldest node that no longer fits, or
// nil: first beyond maxEntries in pchannel's part, then the oldest of all
// while the layer holds more than maxBytes.
func (r *recent[V]) popOverflow(pchannel string, maxEntries int, maxBytes int64) *recentNode[V] {
	var n *recentNode[V]
	if ch := r.channels[pchannel]; ch != nil && ch.n > maxEntries {
		n = ch.oldest
	} else if r.bytes > maxBytes {
		n = r.oldest
	}
	if n != nil {
		r.remove(n)
	}
	return n
}

// dropBelow removes pchannel's nodes whose term is below floor and returns
// how many it removed.
func (r *recent[V]) dropBelow(pchannel string, floor uint64) int {
	ch, ok := r.channels[pchannel]
	if !ok {
		return 0
	}
	dropped := 0
	for n := ch.oldest; n != nil; {
		next := n.chNewer
		if n.term < floor {
			r.remove(n)
			dropped++
		}
		n = next
	}
	return dropped
}

// clear empties the layer (Close).
func (r *recent[V]) clear() {
	*r = recent[V]{}
}
