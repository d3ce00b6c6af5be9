package snapshot_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/objstoretest"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// The flush torture test: segmentlog's torture (writers on faulty stores
// that close, or freeze past their lease and come back as zombies) with
// flushers, compactors and GC running all the while, each through faults
// of its own, GC on a min_age shorter than a zombie's pause and deleting
// orphan and retired segment files after a grace of half a round. A
// checker asserts I10 throughout: a file missing while the current
// manifest names it is a violation. At the end a clean writer
// fences, a last flush runs, and the pchannel is read back from segments
// then the WAL: every acked append exactly once at its acked ID, nothing
// that was never sent, IDs, timeticks and per-producer order increasing,
// no key twice (I1-I4, I7), every manifest file present (I10), and the
// checkpoint history one chain.
//
// GC's min_age here is docs/protocol.md's lower bound 2·TTL + 3R, so GC
// empties slots while writers still replay them: recovery must re-read the
// checkpoint at a missing slot (docs/protocol.md "Reading" rule 3), which this
// test caught once.
var (
	flushTortureRounds = flag.Int("flushtorture.rounds", 0, "flush torture rounds per store (0: the default)")
	flushTortureSeed   = flag.Uint64("flushtorture.seed", 0, "flush torture seed (0: time-based)")
	flushTortureMinAge = flag.Duration("flushtorture.minage", 0, "GC min_age in the flush torture (0: the store's default)")
)

type ftTimings struct {
	ttl, put, round, minAge time.Duration
}

func TestFlushTortureMemory(t *testing.T) {
	runFlushTorture(t, "memory", 3, ftTimings{ttl: 300 * time.Millisecond, put: 40 * time.Millisecond, round: 2 * time.Second, minAge: 720 * time.Millisecond},
		func(*testing.T) objstore.Store { return objstore.NewMemory() })
}

func TestFlushTortureMinIO(t *testing.T) {
	runFlushTorture(t, "minio", 1, ftTimings{ttl: time.Second, put: 200 * time.Millisecond, round: 4 * time.Second, minAge: 2600 * time.Millisecond},
		func(t *testing.T) objstore.Store { return minioStore(t) })
}

func runFlushTorture(t *testing.T, name string, rounds int, tm ftTimings, newStore func(*testing.T) objstore.Store) {
	if *flushTortureRounds > 0 {
		rounds = *flushTortureRounds
	}
	if *flushTortureMinAge > 0 {
		tm.minAge = *flushTortureMinAge
	}
	seed := *flushTortureSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	var sum ftStats
	for r := 0; r < rounds; r++ {
		st := flushTortureRound(t, newStore(t), seed+uint64(r), tm)
		sum.acked, sum.delivered, sum.zombies, sum.flushes, sum.deleted = sum.acked+st.acked, sum.delivered+st.delivered, sum.zombies+st.zombies, sum.flushes+st.flushes, sum.deleted+st.deleted
		sum.merges, sum.abandoned, sum.orphans, sum.i10checks = sum.merges+st.merges, sum.abandoned+st.abandoned, sum.orphans+st.orphans, sum.i10checks+st.i10checks
		sum.noWaitScans += st.noWaitScans
		sum.longInFlight += st.longInFlight
		sum.staleOpens += st.staleOpens
		if t.Failed() {
			t.Fatalf("%s round %d failed; replay the faults with -flushtorture.seed=%d -flushtorture.rounds=1", name, r, seed+uint64(r))
		}
	}
	if sum.longInFlight == 0 || sum.staleOpens == 0 {
		t.Errorf("schedule: %d zombies frozen past twice min_age with PUTs in flight, %d stale opens; both must happen", sum.longInFlight, sum.staleOpens)
	}
	t.Logf("flush torture %s: seed %d, %d rounds, %d appends acked, %d delivered, %d zombies, %d flush rounds committed, %d merges committed (%d abandoned), %d WAL objects and %d segment files collected, %d I10 checks, %d NoWait scans checked against the acks before them, %d zombies frozen past twice min_age with slot PUTs in flight, %d opens frozen past min_age after their checkpoint read, violations 0",
		name, seed, rounds, sum.acked, sum.delivered, sum.zombies, sum.flushes, sum.merges, sum.abandoned, sum.deleted, sum.orphans, sum.i10checks, sum.noWaitScans, sum.longInFlight, sum.staleOpens)
}

type ftStats struct {
	acked, delivered, zombies, flushes, deleted int64
	merges, abandoned, orphans, i10checks       int64
	noWaitScans, longInFlight, staleOpens       int64
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ftProducer appends keyed messages in sequence; an append with an unknown
// outcome is retried under the same key on the next writer.
type ftProducer struct {
	name    string
	seq     uint64
	pending bool
}

type ftHistory struct {
	mu     sync.Mutex
	acked  map[sl.IdemKey]sl.Ack
	sent   map[sl.IdemKey]bool
	errors []string // answers that break I7 as they happen
	// maxAcked is the highest ID acked so far: a NoWait scan that starts
	// later must deliver it before it reports the tail.
	maxAcked sl.MessageID
}

func (p *ftProducer) run(ctx context.Context, w *sl.Writer, h *ftHistory, until time.Time) {
	for time.Now().Before(until) && ctx.Err() == nil {
		if !p.pending {
			p.seq, p.pending = p.seq+1, true
		}
		key := sl.IdemKey{Producer: p.name, Epoch: 1, Seq: p.seq}
		h.mu.Lock()
		h.sent[key] = true
		h.mu.Unlock()
		acks, err := w.Append(ctx, sl.Message{Type: sl.TypeData, VChannel: fmt.Sprintf("v%d", p.seq%3), Key: key, Payload: fmt.Appendf(nil, "%s/%d", p.name, p.seq)})
		if err != nil {
			return // retried on the next writer
		}
		h.mu.Lock()
		if prev, ok := h.acked[key]; ok && prev.ID != acks[0].ID {
			h.errors = append(h.errors, fmt.Sprintf("I7: key %+v acked at %v and at %v", key, prev.ID, acks[0].ID))
		}
		h.acked[key] = acks[0]
		if h.maxAcked.Less(acks[0].ID) {
			h.maxAcked = acks[0].ID
		}
		h.mu.Unlock()
		p.pending = false
	}
}

func flushTortureRound(t *testing.T, base objstore.Store, seed uint64, tm ftTimings) ftStats {
	t.Helper()
	const pch = "torture"
	rng := rand.New(rand.NewPCG(seed, 0xf1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &ftHistory{acked: map[sl.IdemKey]sl.Ack{}, sent: map[sl.IdemKey]bool{}}
	var st ftStats
	leaseCfg := coordinator.LeaseConfig{TTL: tm.ttl, Margin: tm.ttl / 3}
	faulty := func(s uint64) *objstore.Fault {
		return objstore.NewFault(base, objstore.FaultConfig{Seed: s, ErrorRate: 0.03, LostReplyRate: 0.02, DelayedApplyRate: 0.01, DelayedApply: 2 * tm.put})
	}
	// min_age ≥ 2·TTL + 3R (docs/protocol.md "Parameters"); zombies freeze for
	// longer than that.
	minAge := max(tm.minAge, 2*tm.ttl+3*tm.put)
	freeze := minAge + tm.ttl
	zarng := rand.New(rand.NewPCG(rng.Uint64(), 7))

	// The orphan GC below deletes unnamed files half a round old; flushes
	// and merges commit within a quarter round of their first PUT or give
	// up (docs/protocol.md "Flush" rule 9: S ≥ 2 × the longest flush, kept by
	// construction even on a loaded machine).
	commitWithin := tm.round / 4

	// Flushers and GC, through faults of their own, the whole round.
	var bg sync.WaitGroup
	var roundsMu sync.Mutex
	var committed []snapshot.Round
	onRound := func(r snapshot.Round) {
		roundsMu.Lock()
		committed = append(committed, r)
		roundsMu.Unlock()
	}
	var faults []*objstore.Fault
	for i := 0; i < 2; i++ {
		fault := faulty(rng.Uint64())
		faults = append(faults, fault)
		f := newFlusher(t, fault, pch, func(c *snapshot.FlushConfig) {
			c.MinBytes, c.MaxSlots, c.Interval, c.GetTimeout, c.PutTimeout, c.OnRound = 4<<10, 16, 20*time.Millisecond, tm.put, tm.put, onRound
			c.CommitWithin = commitWithin
		})
		bg.Add(1)
		go func() { defer bg.Done(); f.Run(ctx) }()
	}
	gcFault := faulty(rng.Uint64())
	faults = append(faults, gcFault)
	gc := newGC(t, gcFault, func(c *snapshot.GCConfig) {
		c.MinAge, c.OrphanAge, c.ShrinkGarbage, c.Timeout = minAge, 20*tm.round, true, tm.put
	})
	var collected atomic.Int64
	bg.Add(1)
	go func() {
		defer bg.Done()
		for ctx.Err() == nil {
			if res, err := gc.CollectWAL(ctx, pch); err == nil {
				collected.Add(int64(res.Deleted))
			}
			time.Sleep(30 * time.Millisecond)
		}
	}()

	// Compactors merge as soon as two files allow, and a second GC prunes
	// Retired and deletes orphan and retired files half a round after
	// they stop being named: twice as long as a flush or a compaction may
	// take from its first file to its CAS (commitWithin), far shorter
	// than the round, so stale readers meet deleted files.
	var merges, abandoned, orphans atomic.Int64
	for i := 0; i < 2; i++ {
		fault := faulty(rng.Uint64())
		faults = append(faults, fault)
		c := newCompactor(t, fault, pch, func(c *snapshot.CompactConfig) {
			c.MinFiles, c.GetTimeout, c.PutTimeout, c.CommitWithin = 2, tm.put, 4*tm.put, commitWithin
		})
		bg.Add(1)
		go func() {
			defer bg.Done()
			for ctx.Err() == nil {
				if res, err := c.Compact(ctx); err == nil {
					merges.Add(int64(len(res.Merges)))
					abandoned.Add(int64(res.Abandoned))
				}
				time.Sleep(25 * time.Millisecond)
			}
		}()
	}
	orphanFault := faulty(rng.Uint64())
	faults = append(faults, orphanFault)
	orphanGC := newGC(t, orphanFault, func(c *snapshot.GCConfig) { c.OrphanAge, c.Timeout = tm.round/2, tm.put })
	bg.Add(1)
	go func() {
		defer bg.Done()
		for ctx.Err() == nil {
			_, _ = orphanGC.PruneRetired(ctx, pch)
			if res, err := orphanGC.CollectOrphans(ctx); err == nil {
				orphans.Add(int64(res.Deleted))
			}
			time.Sleep(40 * time.Millisecond)
		}
	}()

	// I10 throughout: a file the current manifest names exists. A miss is
	// checked against the manifest as it is after the miss, since the
	// file may have been retired and collected since the record was read.
	var i10checks atomic.Int64
	bg.Add(1)
	go func() {
		defer bg.Done()
		for ctx.Err() == nil {
			cp, _, err := sl.ReadCheckpoint(ctx, base, testLayout, pch)
			if err != nil {
				continue
			}
			for _, ref := range cp.Segments {
				if _, err := base.Head(ctx, ref.Key); errors.Is(err, objstore.ErrNotFound) {
					now, _, err := sl.ReadCheckpoint(ctx, base, testLayout, pch)
					if err == nil && slices.ContainsFunc(now.Segments, func(r sl.SegmentRef) bool { return r.Key == ref.Key }) {
						t.Errorf("I10: manifest version %d names %s, which is gone", now.Version, ref.Key)
					}
				}
			}
			i10checks.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// A reader tails from the start throughout, through segments when the
	// WAL below the checkpoint is gone (docs/protocol.md "Reading" rule 3).
	var tail []sl.Delivery
	var tailErr error
	var tailLast atomic.Pointer[sl.MessageID] // the last ID the tailing reader delivered
	bg.Add(1)
	go func() {
		defer bg.Done()
		sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: pch, Layout: testLayout, From: sl.Earliest(), GetTimeout: tm.put,
			PollMax: 20 * time.Millisecond, Segments: snapshot.NewSegmentReader(base, 0)}, base)
		if err != nil {
			tailErr = err
			return
		}
		defer sc.Close()
		for {
			d, err := sc.Next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					tailErr = err
				}
				return
			}
			tail = append(tail, d)
			tailLast.Store(&d.ID)
		}
	}()

	// NoWait scans from the start, one after another, as the HTTP read
	// path and `cairn consume` make them: each must reach, before it
	// reports the tail, every message acked before it began — also when a
	// flush moves the checkpoint and GC empties the WAL slots behind it
	// while it reads segments (Reading rule 3).
	var noWaitScans, longInFlight, staleOpens atomic.Int64
	bg.Add(1)
	go func() {
		defer bg.Done()
		for ctx.Err() == nil {
			h.mu.Lock()
			want := h.maxAcked
			h.mu.Unlock()
			sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: pch, Layout: testLayout, From: sl.Earliest(), GetTimeout: tm.put,
				NoWait: true, Segments: snapshot.NewSegmentReader(base, 0)}, base)
			if err != nil {
				continue
			}
			var last sl.MessageID
			for {
				d, err := sc.Next(ctx)
				if errors.Is(err, sl.ErrTail) {
					if want != (sl.MessageID{}) && last.Less(want) {
						t.Errorf("I1: a NoWait scan reported the tail after %v, below %v, acked before it began", last, want)
					}
					noWaitScans.Add(1)
					break
				}
				if err != nil {
					break // a store fault or the end of the round
				}
				last = d.ID
			}
			sc.Close()
			time.Sleep(2 * time.Millisecond)
		}
	}()

	// Writers: each turn ends gracefully or as a zombie.
	deadline := time.Now().Add(tm.round)
	var actors, zwg sync.WaitGroup
	for a := 0; a < 3; a++ {
		arng := rand.New(rand.NewPCG(rng.Uint64(), uint64(a)))
		producers := []*ftProducer{{name: fmt.Sprintf("a%d-p0", a)}, {name: fmt.Sprintf("a%d-p1", a)}}
		actors.Add(1)
		go func() {
			defer actors.Done()
			staleLeft := 1 // opens frozen after their checkpoint read, per actor and round
			turn := 0      // turns this actor held the lease in this round
			for time.Now().Before(deadline) {
				fault := faulty(arng.Uint64())
				fz := &objstoretest.Process{Store: fault, Counts: func(k string) bool { return strings.Contains(k, "/wal/") }}
				leases, err := coordinator.NewLeases(fz, testLayout, leaseCfg, coordinator.WithRequestTimeout(tm.put))
				if err != nil {
					t.Error(err)
					return
				}
				if staleLeft > 0 && arng.IntN(3) == 0 {
					staleLeft--
					// A process frozen while it opens: its first checkpoint
					// read is answered, then it stops for longer than
					// min_age; flushes and GC move on meanwhile, and the
					// acquire goes out at the thaw. The recovery then starts
					// from a checkpoint far behind (Fence 1 and 4).
					froze := fz.FreezeAfterReply(func(k string) bool { return k == testLayout.Checkpoint(pch) })
					go func() {
						select {
						case <-froze:
							time.Sleep(freeze)
							staleOpens.Add(1)
						case <-time.After(2 * freeze):
						}
						fz.Thaw(0)
					}()
				}
				w, err := sl.OpenWriter(ctx, sl.WriterConfig{PChannel: pch, Layout: testLayout, Holder: fmt.Sprintf("a%d", a), Logger: quietLog,
					PutTimeout: tm.put, GetTimeout: tm.put, RenewInterval: tm.ttl / 5, MaxBatchBytes: 2 << 10}, fz, leases)
				if err != nil {
					if errors.Is(err, sl.ErrInvariant) {
						t.Errorf("open: %v", err)
						return
					}
					time.Sleep(tm.ttl / 5)
					continue
				}
				turn++
				turnEnd := time.Now().Add(time.Duration(arng.Int64N(int64(tm.round / 4))))
				var pwg sync.WaitGroup
				for _, p := range producers {
					pwg.Add(1)
					go func() { defer pwg.Done(); p.run(ctx, w, h, turnEnd) }()
				}
				// Every actor's first turn of a round ends as a zombie frozen
				// past twice min_age; later turns, a third of them, as one of
				// either length.
				if turn > 1 && arng.IntN(3) > 0 {
					pwg.Wait()
					_ = w.Close(ctx)
					continue
				}
				// A zombie: frozen with its PUTs on their way, past its
				// lease and past min_age; then they go out.
				time.Sleep(time.Duration(arng.Int64N(int64(tm.ttl / 2))))
				fz.Freeze()
				atomic.AddInt64(&st.zombies, 1)
				zwg.Add(1)
				go func() {
					defer zwg.Done()
					// Past min_age and a TTL, or twice that: long enough
					// that GC may have emptied the slots its PUTs aim at,
					// were it not for the W slots it keeps from every term
					// change.
					long := turn == 1 || zarng.IntN(2) == 1
					time.Sleep(freeze * time.Duration(1+b2i(long)))
					if _, writes := fz.Thaw(4 * tm.put); writes > 0 && long {
						longInFlight.Add(1)
					}
					pwg.Wait()
					_ = w.Close(ctx)
				}()
				pwg.Wait() // its producers are stuck until the thaw
			}
		}()
	}
	actors.Wait()
	zwg.Wait()
	// I11: the tailing reader is never stuck: it reaches the last ack of
	// the round, while flushes, compaction and GC go on.
	h.mu.Lock()
	lastAck := h.maxAcked
	h.mu.Unlock()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if got := tailLast.Load(); got != nil && !got.Less(lastAck) {
			break
		}
		if time.Now().After(end) {
			got := tailLast.Load()
			if got == nil {
				got = &sl.MessageID{}
			}
			t.Errorf("I11: the tailing reader is stuck at %v, below the last ack %v, after 10s", *got, lastAck)
			break
		}
	}
	cancel()
	bg.Wait()
	for _, f := range faults {
		f.Drain()
	}

	// A clean writer fences what the actors left; a last flush.
	var final *sl.Writer
	for i := 0; ; i++ {
		var err error
		final, err = sl.OpenWriter(context.Background(), sl.WriterConfig{PChannel: pch, Layout: testLayout, Holder: "final", Logger: quietLog,
			PutTimeout: 4 * tm.put, GetTimeout: 4 * tm.put, RenewInterval: tm.ttl / 5}, base, newLeases(t, base, tm.ttl))
		if err == nil {
			break
		}
		if i > 100 || errors.Is(err, sl.ErrInvariant) {
			// No writer can take the pchannel any more: liveness is gone.
			t.Fatalf("I11: the final writer cannot open the pchannel: %v", err)
		}
		time.Sleep(tm.ttl / 4)
	}
	// I7 across every takeover and flush: the final writer, whose recovery
	// rebuilt the idempotency window from the last checkpoint's dedup state
	// object and the WAL above it, answers a retry of every acked key as a
	// duplicate at the first copy's ID (writing nothing).
	h.mu.Lock()
	acked := maps.Clone(h.acked)
	h.mu.Unlock()
	for key, first := range acked {
		acks, err := final.Append(context.Background(), sl.Message{Type: sl.TypeData, VChannel: fmt.Sprintf("v%d", key.Seq%3), Key: key,
			Payload: fmt.Appendf(nil, "%s/%d", key.Producer, key.Seq)})
		if err != nil {
			t.Fatalf("retry of %+v on the final writer: %v", key, err)
		}
		if !acks[0].Duplicate || acks[0].ID != first.ID {
			t.Errorf("I7: the final writer answered a retry of key %+v with %+v; the first copy was acked at %v", key, acks[0], first.ID)
		}
	}
	if err := final.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Bounded: a flusher that never stops reading is a broken rule too,
	// and the checks below must still run.
	lctx, lcancel := context.WithTimeout(context.Background(), 20*time.Second)
	last, err := newFlusher(t, base, pch, func(c *snapshot.FlushConfig) { c.OnRound = onRound }).FlushNow(lctx)
	lcancel()
	if err != nil {
		t.Errorf("last flush: %v", err) // the checks below say what it means
	}
	cp, _, err := sl.ReadCheckpoint(context.Background(), base, testLayout, pch)
	if err != nil {
		t.Fatal(err)
	}
	// Run flushers stop at the end of the round, perhaps before learning
	// that a last CAS landed: gaps in the reports are allowed.
	checkRounds(t, compactedAway(t, committed, cp), cp, true)
	for _, ref := range cp.Segments {
		if _, err := base.Head(context.Background(), ref.Key); err != nil {
			t.Errorf("I10: manifest names %s: %v", ref.Key, err)
		}
	}
	got := scanAll(t, base, pch, sl.Earliest(), snapshot.NewSegmentReader(base, 0), nil)
	checkFlushTorture(t, h, got)
	if tailErr != nil {
		t.Errorf("I1: tailing reader: %v", tailErr)
	}
	if testing.Verbose() {
		t.Logf("round: %d acked, %d delivered, the tailing reader got %d", len(h.acked), len(got), len(tail))
	}
	if len(tail) > len(got) {
		t.Errorf("I1: the tailing reader got %d messages, the final read %d", len(tail), len(got))
	}
	for i := range min(len(tail), len(got)) {
		if tail[i].ID != got[i].ID || tail[i].Key != got[i].Key {
			t.Errorf("I1: the tailing reader's message %d is %v %+v, the final read's %v %+v", i, tail[i].ID, tail[i].Key, got[i].ID, got[i].Key)
			break
		}
	}
	st.acked, st.delivered, st.flushes, st.deleted = int64(len(h.acked)), int64(len(got)), int64(len(committed)), collected.Load()
	st.merges, st.abandoned, st.orphans, st.i10checks = merges.Load(), abandoned.Load(), orphans.Load(), i10checks.Load()
	st.noWaitScans, st.longInFlight, st.staleOpens = noWaitScans.Load(), longInFlight.Load(), staleOpens.Load()
	if len(last) == 0 && cp.C == 0 {
		t.Error("nothing was ever flushed: the round proves nothing")
	}
	return st
}

func checkFlushTorture(t *testing.T, h *ftHistory, got []sl.Delivery) {
	t.Helper()
	for _, e := range h.errors {
		t.Error(e)
	}
	seen := make(map[sl.IdemKey]sl.Delivery)
	lastSeq := make(map[string]uint64)
	for i, d := range got {
		if !h.sent[d.Key] {
			t.Errorf("I2: %v delivers key %+v that no producer sent", d.ID, d.Key)
		}
		if first, dup := seen[d.Key]; dup {
			t.Errorf("I7: key %+v delivered at %v and %v", d.Key, first.ID, d.ID)
		}
		seen[d.Key] = d
		if want := fmt.Sprintf("%s/%d", d.Key.Producer, d.Key.Seq); string(d.Payload) != want {
			t.Errorf("I1: %v carries %q, want %q", d.ID, d.Payload, want)
		}
		if i > 0 && (!got[i-1].ID.Less(d.ID) || d.TimeTick <= got[i-1].TimeTick) {
			t.Errorf("I3/I4: %v tick %d after %v tick %d", d.ID, d.TimeTick, got[i-1].ID, got[i-1].TimeTick)
		}
		if d.Key.Seq <= lastSeq[d.Key.Producer] {
			t.Errorf("I3: producer %s seq %d after %d", d.Key.Producer, d.Key.Seq, lastSeq[d.Key.Producer])
		}
		lastSeq[d.Key.Producer] = d.Key.Seq
	}
	for key, a := range h.acked {
		d, ok := seen[key]
		switch {
		case !ok:
			t.Errorf("I1: key %+v acked at %v never delivered", key, a.ID)
		case d.ID != a.ID || d.TimeTick != a.TimeTick:
			t.Errorf("I1: key %+v acked at %v tick %d, delivered at %v tick %d", key, a.ID, a.TimeTick, d.ID, d.TimeTick)
		}
	}
}

// compactedAway returns the rounds with the segments compaction merged
// away taken out, checking that a file of the same vchannel in cp's
// manifest covers each one's offsets, so that the rest must still form one
// history (checkRounds).
func compactedAway(t *testing.T, rounds []snapshot.Round, cp sl.Checkpoint) []snapshot.Round {
	t.Helper()
	in := make(map[string]bool)
	for _, r := range cp.Segments {
		in[r.Key] = true
	}
	out := make([]snapshot.Round, len(rounds))
	for i, r := range rounds {
		out[i] = r
		out[i].Segments = nil
		for _, ref := range r.Segments {
			if in[ref.Key] {
				out[i].Segments = append(out[i].Segments, ref)
				continue
			}
			if !slices.ContainsFunc(cp.Segments, func(m sl.SegmentRef) bool {
				return m.VChannel == ref.VChannel && m.FirstOffset <= ref.FirstOffset && ref.LastOffset <= m.LastOffset
			}) {
				t.Errorf("segment %s of flush round version %d is neither in the manifest nor covered by a merged file", ref.Key, r.Version)
			}
		}
	}
	return out
}
