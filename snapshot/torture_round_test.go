package snapshot_test

import (
	"context"
	"errors"
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
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// One round of the flush torture (torture_test.go), in named steps: the
// maintenance processes and their chaos, the watchers and readers, the
// trim actors, the writer actors, then the end of the round and its
// checks. The steps share a flushRound; each background step joins its
// WaitGroup, and stopBackground ends them all.

// flushRound is the state one flush torture round's steps share.
type flushRound struct {
	t        *testing.T
	tm       ftTimings
	base     objstore.Store
	rng      *rand.Rand
	h        *ftHistory
	st       ftStats
	leaseCfg coordinator.LeaseConfig
	// min_age ≥ 2·TTL + 3R (docs/protocol.md "Parameters"); zombies freeze
	// for longer than that (freeze).
	minAge, freeze time.Duration
	// The orphan GC deletes unnamed files half a round old; flushes and
	// merges commit within a quarter round of their first PUT or give up
	// (docs/protocol.md "Flush" rule 9: S ≥ 2 × the longest flush, kept by
	// construction even on a loaded machine).
	commitWithin time.Duration
	zarngMu      sync.Mutex // zombies of several actors draw at once
	zarng        *rand.Rand // the zombies' freeze lengths, under zarngMu

	cancel context.CancelFunc // ends the background steps
	bg     sync.WaitGroup     // every background step
	faults []*objstore.Fault
	// Every flusher, compactor and GC runs as a process of its own, which
	// the maintenance chaos freezes and crashes: flushers 0–1, WAL GC 2,
	// compactors 3–4, orphan GC 5.
	maint []*objstoretest.Process

	roundsMu  sync.Mutex
	committed []snapshot.Round // flush rounds reported by OnRound

	collected, merges, abandoned, orphans              atomic.Int64
	maintFreezes, maintCrashes, fenceChecks, i10checks atomic.Int64
	noWaitScans, longInFlight, staleOpens              atomic.Int64

	// The tailing reader.
	tail          []sl.Delivery // written by the reader until stopBackground
	tailErr       error
	tailLast      atomic.Pointer[sl.MessageID] // the last ID the tailing reader delivered
	tailTruncated atomic.Int64                 // with trims: retention passed the tailing reader

	// The trim actors (tm.trim).
	trimmed                               atomic.Pointer[sl.MessageID] // the highest point a Trim call returned
	trims, truncatedScans, retentionTrims atomic.Int64
	snap                                  snapshotAt // written by the snapshot step until stopBackground

	// Reclaims (tm.reclaim): the registry whose v2 the round drops, and the
	// segment refs GC.ReclaimDropped took out of the manifest.
	reg           *fakeRegistry
	reclaimedRefs atomic.Int64
}

func flushTortureRound(t *testing.T, base objstore.Store, seed uint64, tm ftTimings) ftStats {
	t.Helper()
	r := newFlushRound(t, base, seed, tm)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.cancel = cancel

	r.startMaintenance(ctx)
	r.startMaintenanceChaos(ctx)
	r.startI10Watch(ctx)
	r.startTailingReader(ctx)
	if tm.trim {
		r.startTrimActors(ctx)
	}
	r.startNoWaitScans(ctx)
	if tm.reclaim {
		r.startDrop(ctx)
	}
	r.runWriterActors(ctx)
	r.checkTailReachesLastAck()
	if tm.trim {
		r.trimOnceIfStarved(ctx)
	}
	r.stopBackground()

	r.checkFinalWriterAnswersDuplicates()
	last, cp := r.lastFlush()
	got := r.checkFinalState(cp)
	if tm.trim {
		checkRetentionBound(t, base, flushTorturePChannel, r.h)
	}
	if len(last) == 0 && cp.C == 0 {
		t.Error("nothing was ever flushed: the round proves nothing")
	}
	r.st.acked, r.st.delivered, r.st.flushes, r.st.deleted = int64(len(r.h.acked)), int64(len(got)), int64(len(r.committed)), r.collected.Load()
	r.st.merges, r.st.abandoned, r.st.orphans, r.st.i10checks = r.merges.Load(), r.abandoned.Load(), r.orphans.Load(), r.i10checks.Load()
	r.st.maintFreezes, r.st.maintCrashes, r.st.fenceChecks = r.maintFreezes.Load(), r.maintCrashes.Load(), r.fenceChecks.Load()
	r.st.noWaitScans, r.st.longInFlight, r.st.staleOpens = r.noWaitScans.Load(), r.longInFlight.Load(), r.staleOpens.Load()
	r.st.reclaimedRefs = r.reclaimedRefs.Load()
	return r.st
}

// flushTorturePChannel is the pchannel every round writes.
const flushTorturePChannel = "torture"

func newFlushRound(t *testing.T, base objstore.Store, seed uint64, tm ftTimings) *flushRound {
	rng := rand.New(rand.NewPCG(seed, 0xf1))
	minAge := max(tm.minAge, 2*tm.ttl+3*tm.put)
	return &flushRound{t: t, tm: tm, base: base, rng: rng,
		h:        &ftHistory{acked: map[sl.IdemKey]sl.Ack{}, sent: map[sl.IdemKey]bool{}},
		leaseCfg: coordinator.LeaseConfig{TTL: tm.ttl, Margin: tm.ttl / 3},
		minAge:   minAge, freeze: minAge + tm.ttl, commitWithin: tm.round / 4,
		zarng: rand.New(rand.NewPCG(rng.Uint64(), 7)),
		reg:   newFakeRegistry(map[string]string{"v0": flushTorturePChannel, "v1": flushTorturePChannel, reclaimedVChannel: flushTorturePChannel}),
	}
}

// faulty is a fault-injecting view of the round's store.
func (r *flushRound) faulty(seed uint64) *objstore.Fault {
	return objstore.NewFault(r.base, objstore.FaultConfig{Seed: seed, ErrorRate: 0.03, LostReplyRate: 0.02, DelayedApplyRate: 0.01, DelayedApply: 2 * r.tm.put})
}

// maintFault is a fault view of its own for one maintenance process.
func (r *flushRound) maintFault() *objstoretest.Process {
	f := r.faulty(r.rng.Uint64())
	r.faults = append(r.faults, f)
	p := &objstoretest.Process{Store: f}
	r.maint = append(r.maint, p)
	return p
}

func (r *flushRound) onRound(round snapshot.Round) {
	r.roundsMu.Lock()
	r.committed = append(r.committed, round)
	r.roundsMu.Unlock()
}

// startMaintenance starts, each through faults of its own, for the whole
// round: two flushers, a WAL GC, two compactors that merge as soon as two
// files allow, and a second GC that prunes Retired and deletes orphan and
// retired files half a round after they stop being named — twice as long
// as a flush or a compaction may take from its first file to its CAS
// (commitWithin), far shorter than the round, so stale readers meet
// deleted files.
func (r *flushRound) startMaintenance(ctx context.Context) {
	t, tm, pch := r.t, r.tm, flushTorturePChannel
	for i := 0; i < 2; i++ {
		f := newFlusher(t, r.maintFault(), pch, func(c *snapshot.FlushConfig) {
			c.MinBytes, c.MaxSlots, c.Interval, c.GetTimeout, c.PutTimeout, c.OnRound = 4<<10, 16, 20*time.Millisecond, tm.put, tm.put, r.onRound
			c.CommitWithin = r.commitWithin
		})
		r.bg.Add(1)
		go func() { defer r.bg.Done(); f.Run(ctx) }()
	}
	gc := newGC(t, r.maintFault(), func(c *snapshot.GCConfig) {
		c.MinAge, c.OrphanAge, c.ShrinkGarbage, c.Timeout = r.minAge, 20*tm.round, true, tm.put
	})
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		for ctx.Err() == nil {
			if res, err := gc.CollectWAL(ctx, pch); err == nil {
				r.collected.Add(int64(res.Deleted))
			}
			time.Sleep(30 * time.Millisecond)
		}
	}()
	for i := 0; i < 2; i++ {
		c := newCompactor(t, r.maintFault(), pch, func(c *snapshot.CompactConfig) {
			c.MinFiles, c.GetTimeout, c.PutTimeout, c.CommitWithin = 2, tm.put, 4*tm.put, r.commitWithin
		})
		r.bg.Add(1)
		go func() {
			defer r.bg.Done()
			for ctx.Err() == nil {
				if res, err := c.Compact(ctx); err == nil {
					r.merges.Add(int64(len(res.Merges)))
					r.abandoned.Add(int64(res.Abandoned))
				}
				time.Sleep(25 * time.Millisecond)
			}
		}()
	}
	orphanGC := newGC(t, r.maintFault(), func(c *snapshot.GCConfig) {
		c.OrphanAge, c.Timeout = tm.round/2, tm.put
		if tm.reclaim {
			c.Reclaimer = r.reg
		}
	})
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		for ctx.Err() == nil {
			if tm.trim {
				_, _ = orphanGC.RetireTrimmed(ctx, pch)
			}
			if tm.reclaim {
				if n, err := orphanGC.ReclaimDropped(ctx, pch); err == nil {
					r.reclaimedRefs.Add(int64(n))
				}
			}
			_, _ = orphanGC.PruneRetired(ctx, pch)
			if res, err := orphanGC.CollectOrphans(ctx); err == nil {
				r.orphans.Add(int64(res.Deleted))
			}
			time.Sleep(40 * time.Millisecond)
		}
	}()
}

// startMaintenanceChaos: now and then one of the maintenance processes
// freezes for up to twice CommitWithin, with whatever calls it has in
// flight held, and thaws (so that a round or merge thawed late must give
// up or find its write landed); the first and every fifth event crash one
// instead, after which its calls fail for good (the other instance of its
// kind goes on).
func (r *flushRound) startMaintenanceChaos(ctx context.Context) {
	tm := r.tm
	crashed := make([]bool, len(r.maint))
	crng := rand.New(rand.NewPCG(r.rng.Uint64(), 0x3a1))
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			time.Sleep(tm.round/10 + time.Duration(crng.Int64N(int64(tm.round/10))))
			i := crng.IntN(len(r.maint))
			if n%5 == 0 { // a second flusher or a compactor: the other of its kind goes on
				i = []int{1, 3, 4}[(n/5)%3]
			}
			if ctx.Err() != nil || crashed[i] {
				continue
			}
			if n%5 == 0 {
				crashed[i] = true
				r.maint[i].Crash(crng.Uint64())
				r.maintCrashes.Add(1)
				continue
			}
			r.maint[i].Freeze()
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(crng.Int64N(int64(2 * r.commitWithin)))):
			}
			r.maint[i].Thaw(tm.put * 4)
			r.maintFreezes.Add(1)
		}
	}()
}

// startI10Watch checks I10 throughout: a file the current manifest names
// exists. A miss is checked against the manifest as it is after the miss,
// since the file may have been retired and collected since the record was
// read.
func (r *flushRound) startI10Watch(ctx context.Context) {
	t, base, pch := r.t, r.base, flushTorturePChannel
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
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
			r.i10checks.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

// startTailingReader: a reader tails from the start throughout, through
// segments when the WAL below the checkpoint is gone (docs/protocol.md
// "Reading" rule 3).
func (r *flushRound) startTailingReader(ctx context.Context) {
	tm, base, pch := r.tm, r.base, flushTorturePChannel
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		from := sl.Earliest()
		for {
			sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: pch, Layout: testLayout, From: from, GetTimeout: tm.put,
				PollMax: 20 * time.Millisecond, Segments: snapshot.NewSegmentReader(base, 0)}, base)
			if err != nil {
				r.tailErr = err
				return
			}
			for {
				d, err := sc.Next(ctx)
				var te *sl.TruncatedError
				if tm.trim && errors.As(err, &te) {
					// The retention actor trims by bytes, wherever the reader
					// is: it is told, and reads on from the earliest position.
					r.tailTruncated.Add(1)
					from = sl.AtID(te.Earliest)
					break
				}
				if err != nil {
					if ctx.Err() == nil {
						r.tailErr = err
					}
					sc.Close()
					return
				}
				r.tail = append(r.tail, d)
				r.tailLast.Store(&d.ID)
			}
			sc.Close()
		}
	}()
}

// startTrimActors starts the trim actor, which trims up to where the
// tailing reader was some turns ago (a reader already past a trim point
// never notices it), and the retention actor, which applies a max-bytes
// policy every few turns, each through faults of its own; and, a third
// into the round, takes a snapshot that pins what it holds whatever the
// trims, restores it, and takes and drops a second one.
func (r *flushRound) startTrimActors(ctx context.Context) {
	t, tm, base, pch := r.t, r.tm, r.base, flushTorturePChannel
	trimFault := r.faulty(r.rng.Uint64())
	r.faults = append(r.faults, trimFault)
	trng := rand.New(rand.NewPCG(r.rng.Uint64(), 0x7e))
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		// It trims where the tailing reader was some turns ago, so
		// that flushes, compaction and NoWait scans work above the
		// trim point too.
		var seen []sl.MessageID
		for ctx.Err() == nil {
			time.Sleep(time.Duration(20+trng.IntN(60)) * time.Millisecond)
			if at := r.tailLast.Load(); at != nil && (len(seen) == 0 || seen[len(seen)-1] != *at) {
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
			if prev := r.trimmed.Load(); prev == nil || prev.Less(cp.Trim) {
				r.trimmed.Store(&cp.Trim)
			}
			r.trims.Add(1)
		}
	}()
	retFault := r.faulty(r.rng.Uint64())
	r.faults = append(r.faults, retFault)
	if _, err := snapshot.SetPolicy(ctx, base, testLayout, snapshot.PolicyPChannel, pch, pch, snapshot.Policy{MaxBytes: 12 << 10}, time.Now()); err != nil {
		t.Fatal(err)
	}
	ret := snapshot.NewRetention(snapshot.RetentionConfig{Layout: testLayout, Logger: quietLog, Timeout: tm.put}, retFault)
	rrng := rand.New(rand.NewPCG(r.rng.Uint64(), 0x4e)) // the trim actor's trng is its own
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		for ctx.Err() == nil {
			time.Sleep(time.Duration(50+rrng.IntN(100)) * time.Millisecond)
			if res, err := ret.Apply(ctx); err == nil {
				r.retentionTrims.Add(int64(res.Trimmed))
			}
		}
	}()
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
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
		r.snap = snapshotAt{snaps: snaps, v1: drain(t)(snaps.Open(sctx, "mid", "v1"))}
		// A restore of it, then a second snapshot dropped at once:
		// the restore job pins its own copy of the manifest, and the
		// drop frees only what nothing else names (Snapshots rules 1–2).
		if _, err := snaps.Restore(sctx, "r-mid", "mid", map[string]string{"v1": "r1"}); err != nil {
			t.Errorf("restore mid-round: %v", err)
			return
		}
		r.snap.restored = true
		if _, err := snaps.Create(sctx, "dropped", []string{"v1"}); err != nil {
			t.Errorf("second snapshot mid-round: %v", err)
			return
		}
		if err := snaps.Drop(sctx, "dropped"); err != nil {
			t.Errorf("drop mid-round: %v", err)
		}
	}()
}

// startNoWaitScans runs NoWait scans from the start, one after another,
// as the HTTP read path and `cairn consume` make them: each must reach,
// before it reports the tail, every message acked before it began — also
// when a flush moves the checkpoint and GC empties the WAL slots behind it
// while it reads segments (Reading rule 3).
func (r *flushRound) startNoWaitScans(ctx context.Context) {
	t, tm, base, h, pch := r.t, r.tm, r.base, r.h, flushTorturePChannel
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		for ctx.Err() == nil {
			h.mu.Lock()
			want := h.maxAcked
			var vchans []string
			if tm.reclaim {
				// v2's segments may be reclaimed under it: the promise is
				// about the others.
				want, vchans = h.maxKept, []string{"v0", "v1"}
			}
			h.mu.Unlock()
			sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: pch, Layout: testLayout, From: sl.Earliest(), GetTimeout: tm.put,
				NoWait: true, Segments: snapshot.NewSegmentReader(base, 0), VChannels: vchans}, base)
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
					r.noWaitScans.Add(1)
					break
				}
				if errors.Is(err, sl.ErrTruncated) {
					r.truncatedScans.Add(1) // a trim passed it: said, not skipped
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
}

// runWriterActors runs three writer actors for the round and waits for
// them and their zombies: each turn ends gracefully or as a zombie.
func (r *flushRound) runWriterActors(ctx context.Context) {
	deadline := time.Now().Add(r.tm.round)
	var actors, zwg sync.WaitGroup
	for a := 0; a < 3; a++ {
		arng := rand.New(rand.NewPCG(r.rng.Uint64(), uint64(a)))
		producers := []*ftProducer{{name: fmt.Sprintf("a%d-p0", a)}, {name: fmt.Sprintf("a%d-p1", a)}}
		actors.Add(1)
		go func() {
			defer actors.Done()
			r.writerActor(ctx, a, arng, producers, deadline, &zwg)
		}()
	}
	actors.Wait()
	zwg.Wait()
}

// writerActor takes turns holding the lease until deadline. Now and then
// its open freezes after the checkpoint read, past min_age (a stale open);
// every fence is checked against the checkpoint read before it (I6); its
// first turn, and a third of the later ones, end as a zombie frozen with
// its PUTs on their way (zwg waits for those).
func (r *flushRound) writerActor(ctx context.Context, a int, arng *rand.Rand, producers []*ftProducer, deadline time.Time, zwg *sync.WaitGroup) {
	t, tm, base, h, pch, freeze := r.t, r.tm, r.base, r.h, flushTorturePChannel, r.freeze
	staleLeft := 1 // opens frozen after their checkpoint read, per actor and round
	turn := 0      // turns this actor held the lease in this round
	for time.Now().Before(deadline) {
		fault := r.faulty(arng.Uint64())
		fz := &objstoretest.Process{Store: fault, Counts: func(k string) bool { return strings.Contains(k, "/wal/") }}
		leases, err := coordinator.NewLeases(fz, testLayout, r.leaseCfg, coordinator.WithRequestTimeout(tm.put))
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
					r.staleOpens.Add(1)
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
		r.fenceChecks.Add(1)
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
		atomic.AddInt64(&r.st.zombies, 1)
		zwg.Add(1)
		first := turn == 1 // read here: the actor's next turn changes turn
		go func() {
			defer zwg.Done()
			// Past min_age and a TTL, or twice that: long enough
			// that GC may have emptied the slots its PUTs aim at,
			// were it not for the W slots it keeps from every term
			// change.
			long := first || r.longFreeze()
			time.Sleep(freeze * time.Duration(1+b2i(long)))
			if _, writes := fz.Thaw(4 * tm.put); writes > 0 && long {
				r.longInFlight.Add(1)
			}
			pwg.Wait()
			_ = w.Close(ctx)
		}()
		pwg.Wait() // its producers are stuck until the thaw
	}
}

// longFreeze draws whether a zombie freezes for twice the usual time.
func (r *flushRound) longFreeze() bool {
	r.zarngMu.Lock()
	defer r.zarngMu.Unlock()
	return r.zarng.IntN(2) == 1
}

// checkTailReachesLastAck checks I11: the tailing reader is never stuck:
// it reaches the last ack of the round, while flushes, compaction and GC
// go on.
func (r *flushRound) checkTailReachesLastAck() {
	r.h.mu.Lock()
	lastAck := r.h.maxAcked
	if r.tm.reclaim {
		lastAck = r.h.maxKept
	}
	r.h.mu.Unlock()
	reached := func() bool { got := r.tailLast.Load(); return got != nil && !got.Less(lastAck) }
	if !testkit.Within(r.t, 10*time.Second, reached) {
		got := r.tailLast.Load()
		if got == nil {
			got = &sl.MessageID{}
		}
		r.t.Errorf("I11: the tailing reader is stuck at %v, below the last ack %v, after 10s", *got, lastAck)
	}
}

// trimOnceIfStarved: a loaded machine may starve the trim actor; then one
// trim at the tailing reader's position, so that the round's checks are
// about a trim (the schedule check still counts the actor's).
func (r *flushRound) trimOnceIfStarved(ctx context.Context) {
	if r.trims.Load() != 0 {
		return
	}
	if at := r.tailLast.Load(); at != nil {
		if _, err := snapshot.Trim(ctx, r.base, testLayout, flushTorturePChannel, *at, time.Now()); err == nil {
			r.trimmed.Store(at)
		}
	}
}

// stopBackground ends every background step and lets the faults' delayed
// writes land.
func (r *flushRound) stopBackground() {
	r.cancel()
	r.bg.Wait()
	for _, f := range r.faults {
		f.Drain()
	}
}

// checkFinalWriterAnswersDuplicates: a clean writer fences what the actors
// left, and checks I7 across every takeover and flush: its recovery
// rebuilt the idempotency window from the last checkpoint's dedup state
// object and the WAL above it, so it answers a retry of every acked key as
// a duplicate at the first copy's ID (writing nothing).
func (r *flushRound) checkFinalWriterAnswersDuplicates() {
	t, tm, base, pch := r.t, r.tm, r.base, flushTorturePChannel
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
	r.h.mu.Lock()
	acked := maps.Clone(r.h.acked)
	r.h.mu.Unlock()
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
}

// lastFlush flushes what is left and returns its rounds and the
// checkpoint after it. Bounded: a flusher that never stops reading is a
// broken rule too, and the checks after it must still run.
func (r *flushRound) lastFlush() ([]snapshot.Round, sl.Checkpoint) {
	t, base, pch := r.t, r.base, flushTorturePChannel
	lctx, lcancel := context.WithTimeout(context.Background(), 20*time.Second)
	last, err := newFlusher(t, base, pch, func(c *snapshot.FlushConfig) { c.OnRound = r.onRound }).FlushNow(lctx)
	lcancel()
	if err != nil {
		t.Errorf("last flush: %v", err) // the checks below say what it means
	}
	cp, _, err := sl.ReadCheckpoint(context.Background(), base, testLayout, pch)
	if err != nil {
		t.Fatal(err)
	}
	return last, cp
}

// checkFinalState checks the round's end state at checkpoint cp: the
// chain of flush rounds, I10 on the manifest, the final read against the
// history, the tailing reader against the final read, and with trims the
// trim point (I12) and the mid-round snapshot and its restore. It returns
// the final read.
func (r *flushRound) checkFinalState(cp sl.Checkpoint) []sl.Delivery {
	t, tm, base, pch := r.t, r.tm, r.base, flushTorturePChannel
	// Run flushers stop at the end of the round, perhaps before learning
	// that a last CAS landed: gaps in the reports are allowed.
	rounds := r.committed
	if tm.reclaim {
		// Any file of the dropped vchannel may have been reclaimed.
		rounds = withoutVChannel(rounds, reclaimedVChannel)
	}
	checkRounds(t, compactedAway(t, rounds, cp, tm.trim), cp, true)
	for _, ref := range cp.Segments {
		if _, err := base.Head(context.Background(), ref.Key); err != nil {
			t.Errorf("I10: manifest names %s: %v", ref.Key, err)
		}
	}
	got := scanAll(t, base, pch, sl.Earliest(), snapshot.NewSegmentReader(base, 0), nil)
	gone := ""
	if tm.reclaim {
		gone = reclaimedVChannel
	}
	checkFlushTorture(t, r.h, got, cp.Trim, gone)
	if r.tailErr != nil {
		t.Errorf("I1/I12: tailing reader: %v", r.tailErr)
	}
	tail := r.tail
	if tm.trim {
		r.checkTrims(cp)
		// The tailing reader read from the start: the final read is its
		// suffix from the trim point.
		for len(tail) > 0 && tail[0].ID.Less(cp.Trim) {
			tail = tail[1:]
		}
	}
	if testing.Verbose() {
		t.Logf("round: %d acked, %d delivered, the tailing reader got %d", len(r.h.acked), len(got), len(tail))
	}
	if tm.reclaim {
		// The dropped vchannel's messages may be in one read and reclaimed
		// before the other: compare the others.
		tail, got = kept(tail), kept(got)
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
	return got
}

// checkTrims checks I12 at the end of a round with trims: the trim point
// never went back and moved at all, and the mid-round snapshot and its
// restore read what they held (snapshots win: GC deleted nothing they pin).
func (r *flushRound) checkTrims(cp sl.Checkpoint) {
	t := r.t
	if at := r.trimmed.Load(); at != nil && cp.Trim.Less(*at) {
		t.Errorf("I12: the trim point went back: %v after a trim returned %v", cp.Trim, *at)
	}
	if cp.Trim == (sl.MessageID{}) {
		t.Errorf("schedule: %d trims, final trim point %v: the round proves nothing about trims", r.trims.Load(), cp.Trim)
	}
	if r.snap.snaps == nil {
		t.Error("schedule: the mid-round snapshot was not taken")
	} else {
		sameDeliveries(t, "I10/I12: snapshot mid after trims and GC", drain(t)(r.snap.snaps.Open(context.Background(), "mid", "v1")), r.snap.v1)
		if !r.snap.restored {
			t.Error("schedule: the mid-round snapshot was not restored")
		} else {
			want := slices.Clone(r.snap.v1)
			for i := range want {
				want[i].VChannel = "r1" // a restored history is read under its target's name
			}
			sameDeliveries(t, "I10/I12: restored r1 after trims, a dropped snapshot and GC", drain(t)(r.snap.snaps.OpenRestored(context.Background(), "r-mid", "r1", sl.MessageID{})), want)
		}
	}
	if testing.Verbose() {
		t.Logf("trims: %d, by retention %d, final point %v, %d NoWait scans and the tailing reader %d times told truncated", r.trims.Load(), r.retentionTrims.Load(), cp.Trim, r.truncatedScans.Load(), r.tailTruncated.Load())
	}
}

// startDrop drops the reclaimed vchannel a third into the round: from then
// on the orphan GC takes its segments out of the manifest (while flushes,
// compactions, the WAL GC and the chaos race it) and deletes the files
// once orphaned; the writers keep tagging messages with it, as a stale
// client of a dropped vchannel would, so flushes keep writing its files.
func (r *flushRound) startDrop(ctx context.Context) {
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		t := time.NewTimer(r.tm.round / 3)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		r.reg.mu.Lock()
		r.reg.dropped[reclaimedVChannel] = true
		r.reg.mu.Unlock()
	}()
}

// kept is ds without the reclaimed vchannel's messages.
func kept(ds []sl.Delivery) []sl.Delivery {
	out := make([]sl.Delivery, 0, len(ds))
	for _, d := range ds {
		if d.VChannel != reclaimedVChannel {
			out = append(out, d)
		}
	}
	return out
}

// withoutVChannel is rounds with vchannel's segment files taken out.
func withoutVChannel(rounds []snapshot.Round, vchannel string) []snapshot.Round {
	out := make([]snapshot.Round, len(rounds))
	for i, r := range rounds {
		out[i] = r
		out[i].Segments = nil
		for _, ref := range r.Segments {
			if ref.VChannel != vchannel {
				out[i].Segments = append(out[i].Segments, ref)
			}
		}
	}
	return out
}
