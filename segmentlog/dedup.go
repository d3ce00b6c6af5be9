package segmentlog

import (
	"math"
	"slices"
	"sort"
	"time"
)

// dedupWindow remembers idempotency keys (producer, epoch, seq) and the ID
// each was acked at, for maxAge (docs/protocol.md, "Append" rule 5).
//
// It keeps state per producer epoch, not per message, as Kafka's idempotent
// producer does: for each (producer, epoch) the runs of sequence numbers
// acked. A run is keys seq0, seq0+1, … acked at consecutive IDs of one batch
// with consecutive timeticks, so a batch of keyed messages from one
// producer counting up (what the SDK Producer sends, and what group commit
// makes of its concurrent single-message appends) is one run whatever its
// size. Keys that do not follow on (another batch, a gap) start a new run;
// a producer whose runs stop ascending in seq (batches in flight together
// landing out of seq order, keys chosen by hand) also gets its runs listed
// in seq order (bySeq), one entry per run, not per key.
//
// Committed runs leave in commit order, oldest first, from one FIFO per
// retention class: at most maxKeys runs (an entry counts one run) and
// none older than maxAge by its last timetick. Broadcast keys
// (broadcastKey) are kept apart: for BroadcastRetention, whatever the
// count, because a broadcast task may be resumed long after its first
// attempt ("Broadcast and coordinator" rule 1). Transaction commit keys
// (txnKey) share the producer "@txn" and ascend with the term, so they form
// runs like any producer's. Every ack and every eviction is O(1)
// amortized for a producer whose runs ascend; for one whose runs do not, an
// ack or eviction also moves the bySeq entries between its run and the
// nearer end of the list (a few when batches land near seq order, up to
// half the producer's runs for keys in random order); a lookup is
// O(log runs) of its producer.
//
// A key in flight is pending: a retry waits for the first outcome. Not safe
// for concurrent use; the Writer guards it.
type dedupWindow struct {
	maxAge    time.Duration
	maxKeys   int
	pending   map[IdemKey]*dedupEntry
	producers map[producerEpoch]*producerRuns
	plain     runQueue      // producers of committed plain runs, one per run, oldest first
	bcast     runQueue      // the same for broadcast keys
	closed    chan struct{} // closed: the wait of every committed entry lookup returns
}

// dedupEntry is the outcome of one key: pending until done, or a committed
// key looked up.
type dedupEntry struct {
	id   MessageID
	tick uint64
	done bool
	err  error // set when the pending append failed
	// wait is closed when the outcome is known; made by waitFor only when
	// someone waits (a retry meeting the key in flight), not for every key
	// (a channel per keyed message was 1 % of an append's CPU).
	wait chan struct{}
}

type producerEpoch struct {
	producer string
	epoch    uint64
}

// dedupRun is keys seq0 … seq0+n−1 of one producer epoch, acked at IDs
// (offset, index0+i) with timeticks tick0+i.
type dedupRun struct {
	seq0  uint64
	n     uint32
	id0   MessageID
	tick0 uint64
}

func (r *dedupRun) lastTick() uint64 { return r.tick0 + uint64(r.n) - 1 }

func (r *dedupRun) holds(seq uint64) bool { return seq >= r.seq0 && seq-r.seq0 < uint64(r.n) }

func (r *dedupRun) at(seq uint64) (MessageID, uint64) {
	i := seq - r.seq0
	return MessageID{Offset: r.id0.Offset, Index: r.id0.Index + uint32(i)}, r.tick0 + i
}

// follows reports whether the key seq acked at id with tick extends r.
func (r *dedupRun) follows(seq uint64, id MessageID, tick uint64) bool {
	n := uint64(r.n)
	return seq == r.seq0+n && id.Offset == r.id0.Offset && uint64(id.Index) == uint64(r.id0.Index)+n &&
		tick == r.tick0+n && r.n < math.MaxUint32
}

// producerRuns is one producer epoch's committed runs in commit order.
type producerRuns struct {
	key  producerEpoch
	runs []dedupRun // runs[head:] are live, oldest first
	head int
	// bySeq lists the positions in runs of the live runs, ascending by
	// seq0, once the runs stopped ascending; nil while they ascend (runs
	// is then in seq order itself). Runs never overlap, so a binary search
	// finds the one run that may hold a seq.
	bySeq []int
}

func (p *producerRuns) live() []dedupRun { return p.runs[p.head:] }

// find returns the run holding seq.
func (p *producerRuns) find(seq uint64) (*dedupRun, bool) {
	if p.bySeq != nil {
		i := sort.Search(len(p.bySeq), func(i int) bool { return p.runs[p.bySeq[i]].seq0 > seq }) - 1
		if i >= 0 && p.runs[p.bySeq[i]].holds(seq) {
			return &p.runs[p.bySeq[i]], true
		}
		return nil, false
	}
	live := p.live()
	i := sort.Search(len(live), func(i int) bool { return live[i].seq0+uint64(live[i].n) > seq })
	if i < len(live) && live[i].holds(seq) {
		return &live[i], true
	}
	return nil, false
}

// holdsOutOfOrder reports whether a producer whose runs stopped ascending
// holds seq already (with ascending runs, a key that follows the newest run
// is above every run).
func (p *producerRuns) holdsOutOfOrder(seq uint64) bool {
	if p.bySeq == nil {
		return false
	}
	_, held := p.find(seq)
	return held
}

// add appends a new run (the caller checked none of its seqs is held).
// Batches of one producer that land a little out of seq order (several in
// flight) insert near the end of bySeq, so an add moves few entries.
func (p *producerRuns) add(r dedupRun) {
	live := p.live()
	if p.bySeq == nil && len(live) > 0 && r.seq0 < live[len(live)-1].seq0+uint64(live[len(live)-1].n) {
		p.bySeq = make([]int, 0, 2*len(live))
		for i := p.head; i < len(p.runs); i++ {
			p.bySeq = append(p.bySeq, i)
		}
	}
	if p.head > 0 && p.head >= len(p.runs)/2 {
		// Reclaim the evicted front (amortized O(1) per run).
		p.runs = append(p.runs[:0], p.runs[p.head:]...)
		for i := range p.bySeq {
			p.bySeq[i] -= p.head
		}
		p.head = 0
	}
	p.runs = append(p.runs, r)
	if p.bySeq != nil {
		i := sort.Search(len(p.bySeq), func(i int) bool { return p.runs[p.bySeq[i]].seq0 > r.seq0 })
		p.bySeq = slices.Insert(p.bySeq, i, len(p.runs)-1)
	}
}

// extend grows the newest run by the key that follows it (the caller
// checked no other run holds it, so bySeq stays in order).
func (p *producerRuns) extend() { p.runs[len(p.runs)-1].n++ }

// dropOldest removes the oldest run; it reports whether any are left. The
// oldest run is near the front of bySeq when batches land near seq order;
// the entries on its shorter side move.
func (p *producerRuns) dropOldest() bool {
	if p.bySeq != nil {
		seq0 := p.runs[p.head].seq0
		i := sort.Search(len(p.bySeq), func(i int) bool { return p.runs[p.bySeq[i]].seq0 >= seq0 })
		if i < len(p.bySeq)/2 {
			copy(p.bySeq[1:i+1], p.bySeq[:i])
			p.bySeq = p.bySeq[1:]
		} else {
			p.bySeq = slices.Delete(p.bySeq, i, i+1)
		}
	}
	p.runs[p.head] = dedupRun{}
	p.head++
	return p.head < len(p.runs)
}

// runQueue is a FIFO of producers, one element per committed run, in
// commit order: the front's oldest run is the oldest run of the queue.
type runQueue struct {
	q    []*producerRuns
	head int
}

func (q *runQueue) len() int               { return len(q.q) - q.head }
func (q *runQueue) front() *producerRuns   { return q.q[q.head] }
func (q *runQueue) items() []*producerRuns { return q.q[q.head:] }
func (q *runQueue) push(p *producerRuns)   { q.q = append(q.q, p) }
func (q *runQueue) pop() (p *producerRuns) {
	p, q.q[q.head] = q.q[q.head], nil
	q.head++
	if q.head >= 1024 && q.head >= len(q.q)/2 {
		q.q = append(q.q[:0], q.q[q.head:]...)
		q.head = 0
	}
	return p
}

func newDedupWindow(maxAge time.Duration, maxKeys int) *dedupWindow {
	closed := make(chan struct{})
	close(closed)
	return &dedupWindow{maxAge: maxAge, maxKeys: maxKeys, closed: closed,
		pending: make(map[IdemKey]*dedupEntry), producers: make(map[producerEpoch]*producerRuns)}
}

// lookup returns the entry of key, committed or pending.
func (d *dedupWindow) lookup(key IdemKey) (*dedupEntry, bool) {
	if e, ok := d.pending[key]; ok {
		return e, true
	}
	if id, tick, ok := d.committed(key); ok {
		return &dedupEntry{id: id, tick: tick, done: true}, true
	}
	return nil, false
}

// committed returns where key was acked, if it is in the window.
func (d *dedupWindow) committed(key IdemKey) (MessageID, uint64, bool) {
	p, ok := d.producers[producerEpoch{key.Producer, key.Epoch}]
	if !ok {
		return MessageID{}, 0, false
	}
	r, ok := p.find(key.Seq)
	if !ok {
		return MessageID{}, 0, false
	}
	id, tick := r.at(key.Seq)
	return id, tick, true
}

// begin marks key pending and returns its entry.
func (d *dedupWindow) begin(key IdemKey) *dedupEntry {
	e := &dedupEntry{}
	d.pending[key] = e
	return e
}

// waitFor returns a channel closed once e's outcome is known: at once for
// a committed entry or a failed one. It is called under the lock that
// guards the window, like commit and fail, which close what it made.
func (d *dedupWindow) waitFor(e *dedupEntry) <-chan struct{} {
	if e.done || e.err != nil {
		return d.closed
	}
	if e.wait == nil {
		e.wait = make(chan struct{})
	}
	return e.wait
}

// resolved closes e's wait, if anyone asked for it.
func (e *dedupEntry) resolved() {
	if e.wait != nil {
		close(e.wait)
	}
}

// commit records that key was acked at id with tick, waking waiters. A key
// already committed keeps its first ID.
func (d *dedupWindow) commit(key IdemKey, id MessageID, tick uint64, now time.Time) {
	if e, ok := d.pending[key]; ok {
		delete(d.pending, key)
		e.id, e.tick, e.done = id, tick, true
		e.resolved()
	}
	pk := producerEpoch{key.Producer, key.Epoch}
	p, ok := d.producers[pk]
	switch {
	case !ok:
		p = &producerRuns{key: pk}
		d.producers[pk] = p
	case p.runs[len(p.runs)-1].follows(key.Seq, id, tick) && !p.holdsOutOfOrder(key.Seq):
		p.extend()
		d.evict(now)
		return
	default:
		if _, held := p.find(key.Seq); held {
			return
		}
	}
	p.add(dedupRun{seq0: key.Seq, n: 1, id0: id, tick0: tick})
	if isBroadcastKey(key) {
		d.bcast.push(p)
	} else {
		d.plain.push(p)
	}
	d.evict(now)
}

// fail forgets a pending key whose append did not get acked, waking waiters
// with err. The key may be appended again (by a later writer).
func (d *dedupWindow) fail(key IdemKey, err error) {
	e, ok := d.pending[key]
	if !ok {
		return
	}
	e.err = err
	e.resolved()
	delete(d.pending, key)
}

// evict drops committed runs older than maxAge or beyond maxKeys, and
// broadcast runs older than BroadcastRetention.
func (d *dedupWindow) evict(now time.Time) {
	d.evictFrom(&d.plain, TickOf(now.Add(-d.maxAge)), d.maxKeys)
	d.evictFrom(&d.bcast, TickOf(now.Add(-BroadcastRetention)), math.MaxInt)
}

// evictFrom drops the oldest runs of q while they are older than oldest or
// more than maxRuns remain.
func (d *dedupWindow) evictFrom(q *runQueue, oldest uint64, maxRuns int) {
	for q.len() > 0 {
		p := q.front()
		if q.len() <= maxRuns && p.runs[p.head].lastTick() >= oldest {
			return
		}
		q.pop()
		if !p.dropOldest() {
			delete(d.producers, p.key)
		}
	}
}

// size returns the committed runs and the producer epochs they belong to.
func (d *dedupWindow) size() (runs, producers int) {
	return d.plain.len() + d.bcast.len(), len(d.producers)
}

// restore loads a checkpoint's snapshot.
func (d *dedupWindow) restore(entries []DedupEntry, now time.Time) {
	for _, e := range entries {
		d.commit(e.Key, e.ID, e.TimeTick, now)
	}
}

// snapshot lists the committed keys, oldest first: the plain keys, then
// the broadcast keys (restore sorts them into their queues again, each in
// its order).
func (d *dedupWindow) snapshot() []DedupEntry {
	var out []DedupEntry
	d.eachRun(func(k producerEpoch, r dedupRun) {
		for s := r.seq0; s < r.seq0+uint64(r.n); s++ {
			id, tick := r.at(s)
			out = append(out, DedupEntry{Key: IdemKey{Producer: k.producer, Epoch: k.epoch, Seq: s}, ID: id, TimeTick: tick})
		}
	})
	return out
}

// eachRun calls fn for every committed run in commit order, plain runs
// first, then broadcast runs: committing their keys in this order into an
// empty window rebuilds this one.
func (d *dedupWindow) eachRun(fn func(producerEpoch, dedupRun)) {
	for _, q := range []*runQueue{&d.plain, &d.bcast} {
		// The queue names a producer once per run, in commit order; each
		// producer's runs are in commit order too, so the n-th time the
		// queue names p is p's n-th live run.
		seen := make(map[*producerRuns]int)
		for _, p := range q.items() {
			i := seen[p]
			seen[p] = i + 1
			fn(p.key, p.live()[i])
		}
	}
}

// restoreRun commits a whole run, as eachRun gave it: at once when
// restoreWhole can, else key by key.
func (d *dedupWindow) restoreRun(k producerEpoch, r dedupRun, now time.Time) {
	if r.n == 0 || d.restoreWhole(k, r, now) {
		return
	}
	key := IdemKey{Producer: k.producer, Epoch: k.epoch}
	for i := range uint64(r.n) {
		key.Seq = r.seq0 + i
		id, tick := r.at(key.Seq)
		d.commit(key, id, tick, now)
	}
}

// restoreWhole commits run r of k in one step when that is the common case
// — no key pending, a plain (not broadcast) producer whose runs ascend, and
// r above all of them, so none of its keys is held — and reports whether
// it did. The window then holds what committing r's keys one by one would
// have left, but for a run whose oldest keys are past maxAge and newest
// are not: one by one those oldest keys would go, whole the run stays
// until its last tick ages, as a run acked live does. A recovery restores
// windows of up to a million keys in a few thousand runs; key by key took
// half a second.
func (d *dedupWindow) restoreWhole(k producerEpoch, r dedupRun, now time.Time) bool {
	if len(d.pending) > 0 || isBroadcastKey(IdemKey{Producer: k.producer}) {
		return false
	}
	p, ok := d.producers[k]
	if ok {
		last := &p.runs[len(p.runs)-1]
		switch {
		case p.bySeq != nil || r.seq0 < last.seq0+uint64(last.n):
			return false // some key may be held: it keeps its first ID
		case last.follows(r.seq0, r.id0, r.tick0) && uint64(last.n)+uint64(r.n) < math.MaxUint32:
			last.n += r.n
			d.evict(now)
			return true
		}
	} else {
		p = &producerRuns{key: k}
		d.producers[k] = p
	}
	p.add(r)
	d.plain.push(p)
	d.evict(now)
	return true
}
