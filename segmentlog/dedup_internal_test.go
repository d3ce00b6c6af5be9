package segmentlog

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// commitBatch commits keys seq0 … seq0+n−1 of producer as group commit
// acks them: one batch at offset, consecutive indexes and timeticks.
func commitBatch(d *dedupWindow, producer string, epoch, seq0 uint64, n int, offset, tick0 uint64, now time.Time) {
	for i := range n {
		d.commit(IdemKey{Producer: producer, Epoch: epoch, Seq: seq0 + uint64(i)},
			MessageID{Offset: offset, Index: uint32(i)}, tick0+uint64(i), now)
	}
}

// TestDedupStateIsPerProducerBatch: a producer counting up keeps one run
// per batch whatever the batch's size, and every key of it is answered
// with its own ID and tick.
func TestDedupStateIsPerProducerBatch(t *testing.T) {
	t0 := time.Now()
	tick := TickOf(t0)
	d := newDedupWindow(10*time.Minute, 100)
	for b := range uint64(3) {
		commitBatch(d, "sdk", 7, b*1000, 1000, 10+b, tick+b*5000, t0)
	}
	if runs, producers := d.size(); runs != 3 || producers != 1 {
		t.Fatalf("3 batches of 1000 keys of one producer: %d runs of %d producers, want 3 of 1", runs, producers)
	}
	for _, seq := range []uint64{0, 999, 1000, 2500, 2999} {
		e, ok := d.lookup(IdemKey{Producer: "sdk", Epoch: 7, Seq: seq})
		b := seq / 1000
		want := MessageID{Offset: 10 + b, Index: uint32(seq % 1000)}
		if !ok || !e.done || e.id != want || e.tick != tick+b*5000+seq%1000 {
			t.Errorf("seq %d: %+v %t, want done at %v", seq, e, ok, want)
		}
	}
	for _, k := range []IdemKey{{Producer: "sdk", Epoch: 7, Seq: 3000}, {Producer: "sdk", Epoch: 8, Seq: 0}, {Producer: "other", Epoch: 7, Seq: 1}} {
		if _, ok := d.lookup(k); ok {
			t.Errorf("%+v found, never committed", k)
		}
	}
}

// TestDedupRunsBreakWhereKeysDoNotFollow: a gap in seq, index or tick
// starts a new run; a key committed twice keeps its first ID.
func TestDedupRunsBreakWhereKeysDoNotFollow(t *testing.T) {
	t0 := time.Now()
	tick := TickOf(t0)
	d := newDedupWindow(10*time.Minute, 100)
	k := func(s uint64) IdemKey { return IdemKey{Producer: "p", Epoch: 1, Seq: s} }
	d.commit(k(0), MessageID{Offset: 8, Index: 0}, tick, t0)
	d.commit(k(1), MessageID{Offset: 8, Index: 1}, tick+1, t0)   // follows
	d.commit(k(3), MessageID{Offset: 8, Index: 2}, tick+2, t0)   // seq gap
	d.commit(k(4), MessageID{Offset: 8, Index: 4}, tick+4, t0)   // index gap
	d.commit(k(5), MessageID{Offset: 8, Index: 5}, tick+9, t0)   // tick gap
	d.commit(k(6), MessageID{Offset: 9, Index: 6}, tick+10, t0)  // other batch
	d.commit(k(1), MessageID{Offset: 12, Index: 0}, tick+50, t0) // already there
	if runs, _ := d.size(); runs != 5 {
		t.Fatalf("%d runs, want 5", runs)
	}
	if e, _ := d.lookup(k(1)); e.id != (MessageID{Offset: 8, Index: 1}) {
		t.Errorf("key 1 at %v, want its first ID 8.1", e.id)
	}
	if _, ok := d.lookup(k(2)); ok {
		t.Error("key 2 found in the gap")
	}
}

// TestDedupOutOfOrderKeys: keys chosen by hand in any order (the HTTP API
// accepts them) are all found, keep their first ID and leave in commit
// order.
func TestDedupOutOfOrderKeys(t *testing.T) {
	t0 := time.Now()
	tick := TickOf(t0)
	d := newDedupWindow(10*time.Minute, 4)
	seqs := []uint64{50, 10, 30, 11, 90, 10}
	for i, s := range seqs {
		d.commit(IdemKey{Producer: "h", Epoch: 0, Seq: s}, MessageID{Offset: uint64(100 + i)}, tick+uint64(i), t0)
	}
	// 50, 10, 30, 11, 90 are five runs (11 follows 10 in seq but not in
	// ID); the limit of 4 evicted 50; the second 10 kept the first.
	if _, ok := d.lookup(IdemKey{Producer: "h", Seq: 50}); ok {
		t.Error("the oldest run survived the limit")
	}
	for s, off := range map[uint64]uint64{10: 101, 30: 102, 11: 103, 90: 104} {
		if e, ok := d.lookup(IdemKey{Producer: "h", Seq: s}); !ok || e.id.Offset != off {
			t.Errorf("seq %d: %+v %t, want offset %d", s, e, ok, off)
		}
	}
}

// TestDedupOutOfOrderBatches: batches of one producer landing out of seq
// order — blocks of keys handed out in order, committed shuffled eight at a
// time, as batches in flight together land; or single keys in random order
// — are one run each, listed in seq order with one entry per run (not per
// key), and after many evictions exactly the newest limit batches are
// found, each key at its own ID.
func TestDedupOutOfOrderBatches(t *testing.T) {
	for _, shape := range []struct {
		name        string
		size, group int
	}{{"interleaved batches", 50, 8}, {"random single keys", 1, 4096}} {
		t.Run(shape.name, func(t *testing.T) {
			const batches, limit = 6000, 500
			t0 := time.Now()
			rng := rand.New(rand.NewPCG(1, uint64(shape.size)))
			order := make([]uint64, batches) // batch numbers in commit order
			for i := range order {
				order[i] = uint64(i)
			}
			for g := 0; g < batches; g += shape.group {
				grp := order[g:min(g+shape.group, batches)]
				rng.Shuffle(len(grp), func(i, j int) { grp[i], grp[j] = grp[j], grp[i] })
			}
			d := newDedupWindow(time.Hour, limit)
			for i, b := range order {
				commitBatch(d, "p", 1, b*uint64(shape.size), shape.size, uint64(i), TickOf(t0)+uint64(i)*1000, t0)
			}
			p := d.producers[producerEpoch{"p", 1}]
			if runs, _ := d.size(); runs != limit || p == nil || len(p.bySeq) != limit {
				t.Fatalf("%d runs, %v listed in seq order; want %d of each", runs, p != nil && p.bySeq != nil, limit)
			}
			for i, b := range order {
				for j := range uint64(shape.size) {
					e, ok := d.lookup(IdemKey{Producer: "p", Epoch: 1, Seq: b*uint64(shape.size) + j})
					live := i >= batches-limit
					if ok != live || live && (e.id != MessageID{Offset: uint64(i), Index: uint32(j)}) {
						t.Fatalf("batch %d (committed %d of %d) key %d: found %t at %+v, want found %t", b, i, batches, j, ok, e, live)
					}
				}
			}
		})
	}
}

// TestDedupEvictsByAgeAndCount: runs leave oldest first once older than
// the window by their last tick or beyond the limit, and a producer with
// no run left is forgotten.
func TestDedupEvictsByAgeAndCount(t *testing.T) {
	t0 := time.Now()
	d := newDedupWindow(time.Minute, 3)
	for i := range 5 {
		commitBatch(d, "p", 1, uint64(i*10), 10, uint64(i), TickOf(t0)+uint64(i*100), t0)
	}
	if runs, _ := d.size(); runs != 3 {
		t.Fatalf("%d runs after 5 batches, limit 3", runs)
	}
	if _, ok := d.lookup(IdemKey{Producer: "p", Epoch: 1, Seq: 19}); ok {
		t.Error("key of the second batch survived the limit")
	}
	if _, ok := d.lookup(IdemKey{Producer: "p", Epoch: 1, Seq: 20}); !ok {
		t.Error("key of the third batch evicted")
	}
	d.evict(t0.Add(2 * time.Minute))
	if runs, producers := d.size(); runs != 0 || producers != 0 {
		t.Fatalf("after the window: %d runs of %d producers, want none", runs, producers)
	}
}

// TestDedupSnapshotRestoresTheSameWindow: what a checkpoint carries
// rebuilds the window run for run, in both queues.
func TestDedupSnapshotRestoresTheSameWindow(t *testing.T) {
	t0 := time.Now()
	tick := TickOf(t0)
	d := newDedupWindow(10*time.Minute, 100)
	commitBatch(d, "a", 1, 0, 20, 10, tick, t0)
	d.commit(broadcastKey("b1", "v"), MessageID{Offset: 11}, tick+100, t0)
	commitBatch(d, "b", 2, 5, 3, 12, tick+200, t0)
	d.commit(txnKey(1<<32|1), MessageID{Offset: 13, Index: 4}, tick+300, t0)
	commitBatch(d, "a", 1, 20, 5, 14, tick+400, t0)
	d.commit(IdemKey{Producer: "a", Epoch: 1, Seq: 2}, MessageID{Offset: 15}, tick+500, t0) // out of order, already held

	var runs []dedupRun
	d.eachRun(func(_ producerEpoch, r dedupRun) { runs = append(runs, r) })
	r := newDedupWindow(10*time.Minute, 100)
	r.restore(d.snapshot(), t0)
	var again []dedupRun
	r.eachRun(func(_ producerEpoch, r dedupRun) { again = append(again, r) })
	if len(runs) != 5 || len(again) != len(runs) {
		t.Fatalf("runs %v, restored %v", runs, again)
	}
	for i := range runs {
		if runs[i] != again[i] {
			t.Errorf("run %d: %+v, restored %+v", i, runs[i], again[i])
		}
	}
}

// BenchmarkDedupAck commits keyed acks as group commit does (64 producers
// counting up, 4 keys each per batch) for ten times the limit, so most
// batches also evict, and reports the ack rate of the first and the last
// tenth: with O(1) work per ack and eviction their ratio stays near 1.
func BenchmarkDedupAck(b *testing.B) {
	const limit, perBatch = 10_000, 4
	n := max(b.N, 10*limit*perBatch)
	d := newDedupWindow(time.Hour, limit)
	t0 := time.Now()
	tick := TickOf(t0)
	var first, last time.Duration
	start := time.Now()
	for i := range n {
		if i == n/10 {
			first = time.Since(start)
		}
		if i == n-n/10 {
			start = time.Now()
		}
		batch, pos := uint64(i/perBatch), uint64(i%perBatch)
		producer := batch % 64
		d.commit(IdemKey{Producer: "p", Epoch: producer, Seq: batch/64*perBatch + pos},
			MessageID{Offset: batch, Index: uint32(pos)}, tick+uint64(i), t0)
	}
	last = time.Since(start)
	b.ReportMetric(float64(n/10)/first.Seconds(), "first_tenth_acks/s")
	b.ReportMetric(float64(n/10)/last.Seconds(), "last_tenth_acks/s")
	b.ReportMetric(first.Seconds()/last.Seconds(), "last/first")
}

// TestDedupRestoreWholeRunsMatchesKeyByKey: restoring a window run by run
// (the fast path recovery takes) leaves the same runs, in the same order,
// as committing every key one by one, for windows of random producers,
// batches, out-of-order keys, broadcast keys and a full run limit, and
// then runs joined again whose keys the window holds.
func TestDedupRestoreWholeRunsMatchesKeyByKey(t *testing.T) {
	t0 := time.Now()
	tick := TickOf(t0)
	rng := rand.New(rand.NewPCG(7, 11))
	for round := range 200 {
		d := newDedupWindow(10*time.Minute, 1+rng.IntN(60))
		seqs := map[string]uint64{}
		for b := range 40 {
			producer := fmt.Sprintf("p%d", rng.IntN(4))
			switch rng.IntN(10) {
			case 0:
				d.commit(broadcastKey(fmt.Sprintf("b%d", b), "v"), MessageID{Offset: uint64(b)}, tick+uint64(b*100), t0)
			case 1: // a key by hand, maybe held already or below the runs
				d.commit(IdemKey{Producer: producer, Epoch: 1, Seq: uint64(rng.IntN(50))}, MessageID{Offset: uint64(b)}, tick+uint64(b*100), t0)
			default:
				n := 1 + rng.IntN(5)
				commitBatch(d, producer, 1, seqs[producer], n, uint64(b), tick+uint64(b*100), t0)
				seqs[producer] += uint64(n)
			}
		}
		type run struct {
			k producerEpoch
			r dedupRun
		}
		var runs []run
		d.eachRun(func(k producerEpoch, r dedupRun) { runs = append(runs, run{k, r}) })

		whole, keys := newDedupWindow(d.maxAge, d.maxKeys), newDedupWindow(d.maxAge, d.maxKeys)
		for _, x := range runs {
			whole.restoreRun(x.k, x.r, t0)
		}
		keys.restore(d.snapshot(), t0)
		// Recovery then joins the replay's runs, which may hold keys the
		// window holds already (those keep their first ID).
		for _, x := range runs[:min(3, len(runs))] {
			x.r.id0.Offset += 1000
			whole.restoreRun(x.k, x.r, t0)
			for i := range uint64(x.r.n) {
				id, tick := x.r.at(x.r.seq0 + i)
				keys.commit(IdemKey{Producer: x.k.producer, Epoch: x.k.epoch, Seq: x.r.seq0 + i}, id, tick, t0)
			}
		}
		var got, want []run
		whole.eachRun(func(k producerEpoch, r dedupRun) { got = append(got, run{k, r}) })
		keys.eachRun(func(k producerEpoch, r dedupRun) { want = append(want, run{k, r}) })
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: restored whole %v\nkey by key %v", round, got, want)
		}
	}
}

// BenchmarkDedupRestore restores a full window of a million keys in 1,000
// runs (a producer sending 1,000 lines a request), as recovery does from a
// dedup state object.
func BenchmarkDedupRestore(b *testing.B) {
	t0 := time.Now()
	tick := TickOf(t0)
	var runs []stateRun
	for i := range 1000 {
		runs = append(runs, stateRun{key: producerEpoch{"produce", 1},
			run: dedupRun{seq0: uint64(i * 1000), n: 1000, id0: MessageID{Offset: uint64(i)}, tick0: tick + uint64(i*1000)}})
	}
	b.ReportAllocs()
	for b.Loop() {
		d := newDedupWindow(10*time.Minute, DefaultDedupMaxKeys)
		d.restoreState(runs, t0)
	}
}
