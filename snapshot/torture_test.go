package snapshot_test

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
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
	// reclaim drops vchannel v2 a third into the round; the orphan GC
	// reclaims its segments (GC.ReclaimDropped) while flushes, compactions
	// and the other GC runs race it, and deletes the files once orphaned.
	// v2's messages may then be missing; v0's and v1's may not.
	reclaim bool
}

// reclaimedVChannel is the vchannel a round with reclaims drops.
const reclaimedVChannel = "v2"

// vchannelOf is the vchannel of a producer's message seq.
func vchannelOf(seq uint64) string { return fmt.Sprintf("v%d", seq%3) }

// TestFlushTortureMemory is the flush torture on the memory store, with a
// vchannel dropped mid-round and reclaimed (ftTimings.reclaim).
func TestFlushTortureMemory(t *testing.T) {
	runFlushTorture(t, "memory", 3, ftTimings{ttl: 300 * time.Millisecond, put: 40 * time.Millisecond, round: 2 * time.Second, minAge: 720 * time.Millisecond, reclaim: true},
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
		func(t *testing.T) objstore.Store { return testkit.MinIOStore(t, "snapshot") })
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
		sum.reclaimedRefs += st.reclaimedRefs
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
	if tm.reclaim && sum.reclaimedRefs == 0 {
		t.Errorf("schedule: no reclaim took a segment of the dropped vchannel out of a manifest; run more rounds")
	}
	t.Logf("flush torture %s: seed %d, %d rounds, %d appends acked, %d delivered, %d zombies, %d flush rounds committed, %d merges committed (%d abandoned), %d WAL objects and %d segment files collected, %d I10 checks, %d NoWait scans checked against the acks before them, %d zombies frozen past twice min_age with slot PUTs in flight, %d opens frozen past min_age after their checkpoint read, %d maintenance processes frozen (up to 2 × CommitWithin) and %d crashed, %d fences checked against the checkpoint (I6), %d segment refs of a dropped vchannel reclaimed, violations 0",
		name, seed, rounds, sum.acked, sum.delivered, sum.zombies, sum.flushes, sum.merges, sum.abandoned, sum.deleted, sum.orphans, sum.i10checks, sum.noWaitScans, sum.longInFlight, sum.staleOpens, sum.maintFreezes, sum.maintCrashes, sum.fenceChecks, sum.reclaimedRefs)
}

type ftStats struct {
	acked, delivered, zombies, flushes, deleted int64
	merges, abandoned, orphans, i10checks       int64
	noWaitScans, longInFlight, staleOpens       int64
	maintFreezes, maintCrashes, fenceChecks     int64
	reclaimedRefs                               int64
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
	// later must deliver it before it reports the tail. maxKept is the
	// highest of a vchannel no round reclaims.
	maxAcked, maxKept sl.MessageID
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
		acks, err := w.Append(ctx, sl.Message{Type: sl.TypeData, VChannel: vchannelOf(p.seq), Key: key, Payload: fmt.Appendf(nil, "%s/%d", p.name, p.seq)})
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
		if vchannelOf(p.seq) != reclaimedVChannel && h.maxKept.Less(acks[0].ID) {
			h.maxKept = acks[0].ID
		}
		h.mu.Unlock()
		p.pending = false
	}
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
// gone, if not "", is a reclaimed vchannel: its acked messages may be
// missing (but any delivered is checked as the others).
func checkFlushTorture(t *testing.T, h *ftHistory, got []sl.Delivery, trim sl.MessageID, gone string) {
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
		case !ok && gone != "" && vchannelOf(key.Seq) == gone:
			// Reclaimed with its dropped vchannel.
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
