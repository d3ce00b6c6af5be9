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
	// trim adds a trim actor and a snapshot taken mid-round, and the
	// checks of docs/protocol.md "Trim and retention" (I12).
	trim bool
}

func TestFlushTortureMemory(t *testing.T) {
	runFlushTorture(t, "memory", 3, ftTimings{ttl: 300 * time.Millisecond, put: 40 * time.Millisecond, round: 2 * time.Second, minAge: 720 * time.Millisecond},
		func(*testing.T) objstore.Store { return objstore.NewMemory() })
}

// TestFlushTortureTrimMemory is the flush torture with a trim actor: it
// trims the pchannel up to where the tailing reader is, through faults of
// its own, while GC retires and deletes what lies wholly below, and a
// snapshot taken mid-round pins some of it, and a max-bytes retention
// policy is applied throughout (the tailing reader, which it may pass, is
// told and reads on from the earliest position); at the end a tighter
// policy brings the bytes held down to its bound.
func TestFlushTortureTrimMemory(t *testing.T) {
	runFlushTorture(t, "memory+trim", 2, ftTimings{ttl: 300 * time.Millisecond, put: 40 * time.Millisecond, round: 2 * time.Second, minAge: 720 * time.Millisecond, trim: true},
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
		sum.maintFreezes += st.maintFreezes
		sum.maintCrashes += st.maintCrashes
		sum.fenceChecks += st.fenceChecks
		if t.Failed() {
			t.Fatalf("%s round %d failed; replay the faults with -flushtorture.seed=%d -flushtorture.rounds=1", name, r, seed+uint64(r))
		}
	}
	if sum.maintFreezes == 0 || sum.maintCrashes == 0 {
		t.Errorf("schedule: %d flusher, compactor or GC processes frozen and thawed, %d crashed; both must happen", sum.maintFreezes, sum.maintCrashes)
	}
	if sum.longInFlight == 0 || sum.staleOpens == 0 {
		t.Errorf("schedule: %d zombies frozen past twice min_age with PUTs in flight, %d stale opens; both must happen", sum.longInFlight, sum.staleOpens)
	}
	t.Logf("flush torture %s: seed %d, %d rounds, %d appends acked, %d delivered, %d zombies, %d flush rounds committed, %d merges committed (%d abandoned), %d WAL objects and %d segment files collected, %d I10 checks, %d NoWait scans checked against the acks before them, %d zombies frozen past twice min_age with slot PUTs in flight, %d opens frozen past min_age after their checkpoint read, %d maintenance processes frozen (up to 2 × CommitWithin) and %d crashed, %d fences checked against the checkpoint (I6), violations 0",
		name, seed, rounds, sum.acked, sum.delivered, sum.zombies, sum.flushes, sum.merges, sum.abandoned, sum.deleted, sum.orphans, sum.i10checks, sum.noWaitScans, sum.longInFlight, sum.staleOpens, sum.maintFreezes, sum.maintCrashes, sum.fenceChecks)
}

type ftStats struct {
	acked, delivered, zombies, flushes, deleted int64
	merges, abandoned, orphans, i10checks       int64
	noWaitScans, longInFlight, staleOpens       int64
	maintFreezes, maintCrashes, fenceChecks     int64
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
	// Every flusher, compactor and GC runs as a process of its own, which
	// the maintenance chaos below freezes (past CommitWithin, so that a
	// round or merge thawed late must give up or find its write landed)
	// and crashes.
	var maint []*objstoretest.Process
	process := func(f *objstore.Fault) *objstoretest.Process {
		p := &objstoretest.Process{Store: f}
		maint = append(maint, p)
		return p
	}
	for i := 0; i < 2; i++ {
		fault := faulty(rng.Uint64())
		faults = append(faults, fault)
		f := newFlusher(t, process(fault), pch, func(c *snapshot.FlushConfig) {
			c.MinBytes, c.MaxSlots, c.Interval, c.GetTimeout, c.PutTimeout, c.OnRound = 4<<10, 16, 20*time.Millisecond, tm.put, tm.put, onRound
			c.CommitWithin = commitWithin
		})
		bg.Add(1)
		go func() { defer bg.Done(); f.Run(ctx) }()
	}
	gcFault := faulty(rng.Uint64())
	faults = append(faults, gcFault)
	gc := newGC(t, process(gcFault), func(c *snapshot.GCConfig) {
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
		c := newCompactor(t, process(fault), pch, func(c *snapshot.CompactConfig) {
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
	orphanGC := newGC(t, process(orphanFault), func(c *snapshot.GCConfig) { c.OrphanAge, c.Timeout = tm.round/2, tm.put })
	bg.Add(1)
	go func() {
		defer bg.Done()
		for ctx.Err() == nil {
			if tm.trim {
				_, _ = orphanGC.RetireTrimmed(ctx, pch)
			}
			_, _ = orphanGC.PruneRetired(ctx, pch)
			if res, err := orphanGC.CollectOrphans(ctx); err == nil {
				orphans.Add(int64(res.Deleted))
			}
			time.Sleep(40 * time.Millisecond)
		}
	}()

	// Maintenance chaos: now and then one of those processes freezes for up
	// to twice CommitWithin, with whatever calls it has in flight held, and
	// thaws; the first and every fifth event crash one instead, after which
	// its calls fail for good (the other instance of its kind goes on).
	var maintFreezes, maintCrashes, fenceChecks atomic.Int64
	crashed := make([]bool, len(maint))
	crng := rand.New(rand.NewPCG(rng.Uint64(), 0x3a1))
	bg.Add(1)
	go func() {
		defer bg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			time.Sleep(tm.round/10 + time.Duration(crng.Int64N(int64(tm.round/10))))
			i := crng.IntN(len(maint))
			if n%5 == 0 { // a second flusher or a compactor: the other of its kind goes on
				i = []int{1, 3, 4}[(n/5)%3]
			}
			if ctx.Err() != nil || crashed[i] {
				continue
			}
			if n%5 == 0 {
				crashed[i] = true
				maint[i].Crash(crng.Uint64())
				maintCrashes.Add(1)
				continue
			}
			maint[i].Freeze()
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(crng.Int64N(int64(2 * commitWithin)))):
			}
			maint[i].Thaw(tm.put * 4)
			maintFreezes.Add(1)
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
	var tailTruncated atomic.Int64            // with trims: retention passed the tailing reader
	bg.Add(1)
	go func() {
		defer bg.Done()
		from := sl.Earliest()
		for {
			sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: pch, Layout: testLayout, From: from, GetTimeout: tm.put,
				PollMax: 20 * time.Millisecond, Segments: snapshot.NewSegmentReader(base, 0)}, base)
			if err != nil {
				tailErr = err
				return
			}
			for {
				d, err := sc.Next(ctx)
				var te *sl.TruncatedError
				if tm.trim && errors.As(err, &te) {
					// The retention actor trims by bytes, wherever the reader
					// is: it is told, and reads on from the earliest position.
					tailTruncated.Add(1)
					from = sl.AtID(te.Earliest)
					break
				}
				if err != nil {
					if ctx.Err() == nil {
						tailErr = err
					}
					sc.Close()
					return
				}
				tail = append(tail, d)
				tailLast.Store(&d.ID)
			}
			sc.Close()
		}
	}()

	// The trim actor: it trims up to the last message the tailing reader
	// delivered (a reader already past a trim point never notices it),
	// through faults of its own; a snapshot taken mid-round pins what it
	// holds, whatever the trims.
	var trimmed atomic.Pointer[sl.MessageID] // the highest point a Trim call returned
	var trims, truncatedScans, retentionTrims atomic.Int64
	var snap snapshotAt
	if tm.trim {
		trimFault := faulty(rng.Uint64())
		faults = append(faults, trimFault)
		trng := rand.New(rand.NewPCG(rng.Uint64(), 0x7e))
		bg.Add(1)
		go func() {
			defer bg.Done()
			// It trims where the tailing reader was some turns ago, so
			// that flushes, compaction and NoWait scans work above the
			// trim point too.
			var seen []sl.MessageID
			for ctx.Err() == nil {
				time.Sleep(time.Duration(20+trng.IntN(60)) * time.Millisecond)
				if at := tailLast.Load(); at != nil && (len(seen) == 0 || seen[len(seen)-1] != *at) {
					seen = append(seen, *at) // the lag stays behind once appends stop
				}
				if len(seen) < 2 {
					continue
				}
				lag := min(1+trng.IntN(12), len(seen)/2)
				at := &seen[len(seen)-1-lag]
				cp, err := snapshot.Trim(ctx, trimFault, testLayout, pch, *at, time.Now())
				if err != nil {
					continue
				}
				if cp.Trim.Less(*at) {
					t.Errorf("I12: trim at %v returned the record with trim point %v, below it", *at, cp.Trim)
				}
				if prev := trimmed.Load(); prev == nil || prev.Less(cp.Trim) {
					trimmed.Store(&cp.Trim)
				}
				trims.Add(1)
			}
		}()
		// The retention actor: a max-bytes policy applied every few
		// turns, through faults of its own.
		retFault := faulty(rng.Uint64())
		faults = append(faults, retFault)
		if _, err := snapshot.SetPolicy(ctx, base, testLayout, snapshot.PolicyPChannel, pch, pch, snapshot.Policy{MaxBytes: 12 << 10}, time.Now()); err != nil {
			t.Fatal(err)
		}
		ret := snapshot.NewRetention(snapshot.RetentionConfig{Layout: testLayout, Logger: quietLog, Timeout: tm.put}, retFault)
		rrng := rand.New(rand.NewPCG(rng.Uint64(), 0x4e)) // the trim actor's trng is its own
		bg.Add(1)
		go func() {
			defer bg.Done()
			for ctx.Err() == nil {
				time.Sleep(time.Duration(50+rrng.IntN(100)) * time.Millisecond)
				if res, err := ret.Apply(ctx); err == nil {
					retentionTrims.Add(int64(res.Trimmed))
				}
			}
		}()
		bg.Add(1)
		go func() {
			defer bg.Done()
			time.Sleep(tm.round / 3)
			// Not cut short by the end of the round: on a loaded machine
			// a snapshot may take that long, and the round must hold one.
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer scancel()
			snaps := newSnapshots(t, base, newFakeRegistry(map[string]string{"v0": pch, "v1": pch, "v2": pch}))
			if _, err := snaps.Create(sctx, "mid", []string{"v1"}); err != nil {
				t.Errorf("snapshot mid-round: %v", err)
				return
			}
			snap = snapshotAt{snaps: snaps, v1: drain(t)(snaps.Open(sctx, "mid", "v1"))}
			// A restore of it, then a second snapshot dropped at once:
			// the restore job pins its own copy of the manifest, and the
			// drop frees only what nothing else names (Snapshots rules 1–2).
			if _, err := snaps.Restore(sctx, "r-mid", "mid", map[string]string{"v1": "r1"}); err != nil {
				t.Errorf("restore mid-round: %v", err)
				return
			}
			snap.restored = true
			if _, err := snaps.Create(sctx, "dropped", []string{"v1"}); err != nil {
				t.Errorf("second snapshot mid-round: %v", err)
				return
			}
			if err := snaps.Drop(sctx, "dropped"); err != nil {
				t.Errorf("drop mid-round: %v", err)
			}
		}()
	}

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
			var ids map[sl.MessageID]bool // with trims: what the scan delivered
			if tm.trim {
				ids = map[sl.MessageID]bool{}
			}
			for {
				d, err := sc.Next(ctx)
				if errors.Is(err, sl.ErrTail) {
					trimmedPast := false // with trims: want may lie below the point by now
					if tm.trim {
						cp, _, err := sl.ReadCheckpoint(ctx, base, testLayout, pch)
						trimmedPast = err != nil || want.Less(cp.Trim)
					}
					if want != (sl.MessageID{}) && last.Less(want) && !trimmedPast {
						t.Errorf("I1: a NoWait scan reported the tail after %v, below %v, acked before it began", last, want)
					}
					if tm.trim {
						checkNoSkip(t, ctx, base, pch, h, ids, want)
					}
					noWaitScans.Add(1)
					break
				}
				if errors.Is(err, sl.ErrTruncated) {
					truncatedScans.Add(1) // a trim passed it: said, not skipped
					break
				}
				if err != nil {
					break // a store fault or the end of the round
				}
				last = d.ID
				if ids != nil {
					ids[d.ID] = true
				}
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
				// I6 at every fence: it is placed at or above the checkpoint
				// as it was when placed, so at or above this earlier read.
				before, _, cerr := sl.ReadCheckpoint(ctx, base, testLayout, pch)
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
				if fence := w.Stats().FenceOffset; cerr == nil && fence < before.C {
					t.Errorf("I6: term %d placed its fence at %d, below the checkpoint %d read before it opened", w.Term(), fence, before.C)
				}
				fenceChecks.Add(1)
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
				// Past min_age and a TTL, or twice that: long enough that GC
				// may have emptied the slots its PUTs aim at, were it not
				// for the W slots it keeps from every term change. Drawn
				// here, by the actor: turn moves on once the producers are
				// done, and the zombies of three actors run at once.
				long := turn == 1 || arng.IntN(2) == 1
				go func() {
					defer zwg.Done()
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
	if tm.trim && trims.Load() == 0 {
		// A loaded machine may starve the trim actor: one trim at the
		// tailing reader's position, so that the round's checks are about
		// a trim (the schedule check below still counts the actor's).
		if at := tailLast.Load(); at != nil {
			if _, err := snapshot.Trim(ctx, base, testLayout, pch, *at, time.Now()); err == nil {
				trimmed.Store(at)
			}
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
	checkRounds(t, compactedAway(t, committed, cp, tm.trim), cp, true)
	for _, ref := range cp.Segments {
		if _, err := base.Head(context.Background(), ref.Key); err != nil {
			t.Errorf("I10: manifest names %s: %v", ref.Key, err)
		}
	}
	got := scanAll(t, base, pch, sl.Earliest(), snapshot.NewSegmentReader(base, 0), nil)
	checkFlushTorture(t, h, got, cp.Trim)
	if tailErr != nil {
		t.Errorf("I1/I12: tailing reader: %v", tailErr)
	}
	if tm.trim {
		if at := trimmed.Load(); at != nil && cp.Trim.Less(*at) {
			t.Errorf("I12: the trim point went back: %v after a trim returned %v", cp.Trim, *at)
		}
		if cp.Trim == (sl.MessageID{}) {
			t.Errorf("schedule: %d trims, final trim point %v: the round proves nothing about trims", trims.Load(), cp.Trim)
		}
		if snap.snaps == nil {
			t.Error("schedule: the mid-round snapshot was not taken")
		} else {
			// Snapshots win: GC deleted nothing it pins, trims or not.
			sameDeliveries(t, "I10/I12: snapshot mid after trims and GC", drain(t)(snap.snaps.Open(context.Background(), "mid", "v1")), snap.v1)
			if !snap.restored {
				t.Error("schedule: the mid-round snapshot was not restored")
			} else {
				want := slices.Clone(snap.v1)
				for i := range want {
					want[i].VChannel = "r1" // a restored history is read under its target's name
				}
				sameDeliveries(t, "I10/I12: restored r1 after trims, a dropped snapshot and GC", drain(t)(snap.snaps.OpenRestored(context.Background(), "r-mid", "r1")), want)
			}
		}
		// The tailing reader read from the start: the final read is its
		// suffix from the trim point.
		for len(tail) > 0 && tail[0].ID.Less(cp.Trim) {
			tail = tail[1:]
		}
		if testing.Verbose() {
			t.Logf("trims: %d, by retention %d, final point %v, %d NoWait scans and the tailing reader %d times told truncated", trims.Load(), retentionTrims.Load(), cp.Trim, truncatedScans.Load(), tailTruncated.Load())
		}
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
	st.maintFreezes, st.maintCrashes, st.fenceChecks = maintFreezes.Load(), maintCrashes.Load(), fenceChecks.Load()
	st.noWaitScans, st.longInFlight, st.staleOpens = noWaitScans.Load(), longInFlight.Load(), staleOpens.Load()
	if tm.trim {
		checkRetentionBound(t, base, pch, h)
	}
	if len(last) == 0 && cp.C == 0 {
		t.Error("nothing was ever flushed: the round proves nothing")
	}
	return st
}

// checkRetentionBound applies a max-bytes policy of half what the
// pchannel holds after the round: the bytes held come down to the bound,
// and every message acked at or above the new trim point is still read.
func checkRetentionBound(t *testing.T, store objstore.Store, pch string, h *ftHistory) {
	t.Helper()
	ctx := context.Background()
	cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
	if err != nil {
		t.Fatal(err)
	}
	bound := snapshot.HeldBy(cp, "", sl.MessageID{}).Bytes / 2
	if _, err := snapshot.SetPolicy(ctx, store, testLayout, snapshot.PolicyPChannel, pch, pch, snapshot.Policy{MaxBytes: bound}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.NewRetention(snapshot.RetentionConfig{Layout: testLayout, Logger: quietLog}, store).Apply(ctx); err != nil {
		t.Fatalf("retention: %v", err)
	}
	if _, err := newGC(t, store, nil).RetireTrimmed(ctx, pch); err != nil {
		t.Fatal(err)
	}
	cp, _, err = sl.ReadCheckpoint(ctx, store, testLayout, pch)
	if err != nil {
		t.Fatal(err)
	}
	if held := snapshot.HeldBy(cp, "", sl.MessageID{}); held.Bytes > bound {
		t.Errorf("I12: %d bytes held after a retention of %d bytes (trim point %v)", held.Bytes, bound, cp.Trim)
	}
	got := scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil)
	ids := make(map[sl.MessageID]bool, len(got))
	for _, d := range got {
		ids[d.ID] = true
	}
	for key, a := range h.acked {
		if !a.ID.Less(cp.Trim) && !ids[a.ID] {
			t.Errorf("I12: key %+v acked at %v, at or above the retention's trim point %v, not read", key, a.ID, cp.Trim)
			return
		}
	}
}

// snapshotAt is a snapshot taken mid-round and what it held then.
type snapshotAt struct {
	snaps    *snapshot.Snapshots
	v1       []sl.Delivery
	restored bool // restored into r1 by job r-mid
}

// checkNoSkip checks a NoWait scan that reached the tail: it delivered
// every message acked before it began from the trim point on, read after
// the scan (a trim that passed the scan while it read makes it fail with
// ErrTruncated, never skip).
func checkNoSkip(t *testing.T, ctx context.Context, store objstore.Store, pch string, h *ftHistory, ids map[sl.MessageID]bool, want sl.MessageID) {
	cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, a := range h.acked {
		if !a.ID.Less(cp.Trim) && !want.Less(a.ID) && !ids[a.ID] {
			t.Errorf("I12: a NoWait scan reached the tail without %v (key %+v), at or above the trim point %v and acked before it began", a.ID, key, cp.Trim)
			return
		}
	}
}

// checkFlushTorture checks the final read, which starts at the trim point
// (zero: no trim).
func checkFlushTorture(t *testing.T, h *ftHistory, got []sl.Delivery, trim sl.MessageID) {
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
		case !ok && a.ID.Less(trim):
			// Trimmed: no longer readable.
		case !ok && trim != (sl.MessageID{}):
			t.Errorf("I12: key %+v acked at %v, at or above the trim point %v, never delivered", key, a.ID, trim)
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
// With trimmed, a segment wholly below cp's trim point may be gone too.
func compactedAway(t *testing.T, rounds []snapshot.Round, cp sl.Checkpoint, trimmed bool) []snapshot.Round {
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
			if trimmed && ref.LastOffset < cp.Trim.Offset {
				continue // retired below the trim point
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
