package snapshot_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

var allTypes = []sl.MessageType{sl.TypeData, sl.TypeInsert, sl.TypeDelete, sl.TypeTimeTick, sl.TypeTxnBegin,
	sl.TypeTxnCommit, sl.TypeTxnRollback, sl.TypeBroadcast, sl.TypeFlush, sl.TypeCreateVChannel, sl.TypeDropVChannel}

func withAllTypes(c *sl.ScannerConfig) { c.Types = allTypes }

// TestFlushThenCatchUp: a full WAL read taken before flushing equals,
// message for message, the read of segments then the WAL from C after it,
// on every start position; the checkpoint carries what a writer restores.
func TestFlushThenCatchUp(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		const pch = "p1"
		w := openWriter(t, store, pch, nil)
		acks := appendN(t, w, "prod", 0, 60, "va", "vb", "vc")
		if _, err := w.AppendControl(ctx, sl.Message{Type: sl.TypeTimeTick}, sl.Message{Type: sl.TypeCreateVChannel, VChannel: "vd"}); err != nil {
			t.Fatal(err)
		}
		acks = append(acks, appendN(t, w, "prod", 60, 15, "va", "vd")...)
		before := scanAll(t, store, pch, sl.Earliest(), nil, withAllTypes)
		if len(before) != 77 {
			t.Fatalf("WAL read: %d messages, want 77", len(before))
		}

		f := newFlusher(t, store, pch, func(c *snapshot.FlushConfig) { c.MaxSlots = 20 })
		rounds, err := f.FlushNow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// 8 fence-window slots and 76 data slots, 20 a round.
		if len(rounds) != 5 {
			t.Errorf("%d rounds, want 5 (84 slots, MaxSlots 20)", len(rounds))
		}
		for i := 1; i < len(rounds); i++ {
			if rounds[i].From != rounds[i-1].To {
				t.Errorf("round %d starts at %d, the previous ended at %d", i, rounds[i].From, rounds[i-1].To)
			}
		}
		cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
		if err != nil {
			t.Fatal(err)
		}
		tail := w.Stats().Frontier
		if cp.C != tail || cp.MaxTerm != w.Term() || cp.Version != 5 {
			t.Errorf("checkpoint c=%d max_term=%d version=%d, want c=%d (the tail) max_term=%d version 5", cp.C, cp.MaxTerm, cp.Version, tail, w.Term())
		}
		if want := []sl.TermChange{{Offset: 0, Term: w.Term()}}; !slices.Equal(cp.TermChanges, want) {
			t.Errorf("term changes %v, want %v", cp.TermChanges, want)
		}
		if cp.LastTimeTick != before[len(before)-1].TimeTick {
			t.Errorf("last timetick %d, want %d", cp.LastTimeTick, before[len(before)-1].TimeTick)
		}
		if len(cp.Dedup) != 0 || cp.Format != sl.CheckpointFormat {
			t.Errorf("checkpoint format %d holds %d dedup keys inline, want format %d and none", cp.Format, len(cp.Dedup), sl.CheckpointFormat)
		}
		state, err := store.Get(ctx, cp.DedupState)
		if err != nil {
			t.Fatalf("dedup state %q: %v", cp.DedupState, err)
		}
		if keys, err := sl.DecodeDedupState(state.Body); err != nil || len(keys) != 75 {
			t.Errorf("dedup state holds %d keys (%v), want the 75 keyed messages", len(keys), err)
		}
		// Nothing more to flush: a no-op, the checkpoint does not move.
		if again, err := f.FlushNow(ctx); err != nil || len(again) != 0 {
			t.Errorf("second flush: %d rounds, %v; want none", len(again), err)
		}

		segs := snapshot.NewSegmentReader(store, 0)
		sameDeliveries(t, "earliest, all types", scanAll(t, store, pch, sl.Earliest(), segs, withAllTypes), before)
		var data []sl.Delivery
		for _, d := range before {
			if d.Type.IsData() {
				data = append(data, d)
			}
		}
		sameDeliveries(t, "earliest, data", scanAll(t, store, pch, sl.Earliest(), segs, nil), data)
		checkNoGapNoDup(t, scanAll(t, store, pch, sl.Earliest(), segs, nil), acks)
		for _, i := range []int{0, 1, 30, 61, 76} {
			sameDeliveries(t, "from ID "+before[i].ID.String(), scanAll(t, store, pch, sl.AtID(before[i].ID), segs, withAllTypes), before[i:])
			sameDeliveries(t, "from timetick", scanAll(t, store, pch, sl.AtTimeTick(before[i].TimeTick), segs, withAllTypes), before[i:])
		}
		var vb []sl.Delivery
		for _, d := range before {
			if d.VChannel == "vb" {
				vb = append(vb, d)
			}
		}
		sameDeliveries(t, "vchannel vb", scanAll(t, store, pch, sl.Earliest(), segs, func(c *sl.ScannerConfig) { c.VChannels = []string{"vb"} }), vb)

		// Appends after the flush are read from the WAL, after the segments.
		acks = append(acks, appendN(t, w, "prod", 75, 10, "vc")...)
		checkNoGapNoDup(t, scanAll(t, store, pch, sl.Earliest(), segs, nil), acks)
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		// The next writer restores the window from the checkpoint: a retry
		// of an early key is answered with its first copy.
		w2 := openWriter(t, store, pch, nil)
		defer w2.Close(ctx)
		a, err := w2.Append(ctx, sl.Message{Type: sl.TypeData, VChannel: "va", Key: sl.IdemKey{Producer: "prod", Epoch: 1, Seq: 1}, Payload: []byte("retry")})
		if err != nil || !a[0].Duplicate || a[0].ID != acks[0].ID {
			t.Errorf("retry of the first key after flush and failover: %+v, %v; want a duplicate of %v", a, err, acks[0].ID)
		}
	})
}

// TestRunThresholds: Run leaves a small, young backlog alone, flushes it
// once its oldest message is MaxAge old, and flushes at once when MinBytes
// or MinSlots is reached.
func TestRunThresholds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := objstore.NewMemory()
	const pch = "thresholds"
	w := openWriter(t, store, pch, nil)
	defer w.Close(context.Background())
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	// Every look of Run reads the checkpoint first: counting those reads
	// tells when Run has looked at the pchannel since a point.
	var looks atomic.Int64
	cpKey := testLayout.Checkpoint(pch)
	looked := objstore.Observe(store, func(r objstore.Request) {
		if (r.Op == objstore.OpGet || r.Op == objstore.OpGetIfNoneMatch) && r.Key == cpKey {
			looks.Add(1)
		}
	})
	f := newFlusher(t, looked, pch, func(c *snapshot.FlushConfig) {
		c.MinBytes, c.MinSlots, c.MaxAge, c.Interval, c.Now = 64<<10, 30, time.Minute, 5*time.Millisecond, now
	})
	go f.Run(ctx)
	checkpoint := func() sl.Checkpoint {
		cp, _, err := sl.ReadCheckpoint(context.Background(), store, testLayout, pch)
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	waitFor := func(what string, ok func(sl.Checkpoint) bool) {
		t.Helper()
		testkit.Eventually(t, 5*time.Second, "Run flushes "+what, func() bool { return ok(checkpoint()) })
	}

	appendN(t, w, "p", 0, 5, "va")
	// Two looks begun after the append: the first has ended, having seen
	// the backlog.
	since := looks.Load()
	testkit.Eventually(t, 5*time.Second, "Run looks twice after the append", func() bool { return looks.Load() >= since+2 })
	if cp := checkpoint(); cp.C != 0 {
		t.Fatalf("Run flushed a young backlog of 5 small messages (checkpoint %d)", cp.C)
	}
	skew.Store(int64(2 * time.Minute))
	waitFor("an old backlog", func(cp sl.Checkpoint) bool { return cp.C == w.Stats().Frontier })

	skew.Store(0)
	c1 := checkpoint().C
	big := make([]byte, 20<<10)
	for i := 0; i < 4; i++ {
		if _, err := w.Append(context.Background(), sl.Message{Type: sl.TypeData, VChannel: "vb", Payload: big}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("a backlog past MinBytes", func(cp sl.Checkpoint) bool { return cp.C == c1+4 })

	// 29 small batches, one slot each, stay young and below MinBytes...
	c2 := checkpoint().C
	for i := 0; i < 29; i++ {
		if _, err := w.Append(context.Background(), sl.Message{Type: sl.TypeData, VChannel: "vc", Payload: []byte("small")}); err != nil {
			t.Fatal(err)
		}
	}
	since = looks.Load()
	testkit.Eventually(t, 5*time.Second, "Run looks twice after 29 slots", func() bool { return looks.Load() >= since+2 })
	if cp := checkpoint(); cp.C != c2 {
		t.Fatalf("Run flushed a young backlog of 29 small slots, below MinSlots 30 (checkpoint %d → %d)", c2, cp.C)
	}
	// ...and the 30th makes the backlog due: a takeover never replays more
	// than MinSlots (and a look's worth) of slots above the checkpoint.
	if _, err := w.Append(context.Background(), sl.Message{Type: sl.TypeData, VChannel: "vc", Payload: []byte("small")}); err != nil {
		t.Fatal(err)
	}
	waitFor("a backlog of MinSlots slots", func(cp sl.Checkpoint) bool { return cp.C == c2+30 })
}

// positionLog is a PositionSink that keeps the vchannels it is told of.
type positionLog struct {
	mu    sync.Mutex
	names []string
}

func (p *positionLog) AdvanceFlushed(_ context.Context, vchannel string, _ sl.MessageID, _ uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.names = append(p.names, vchannel)
	if err := sl.ValidateName("vchannel", vchannel); err != nil {
		return err // as the registry would
	}
	return nil
}

// TestFlushPositionsOnlyOfVChannels: a round's pchannel-wide messages
// (fences, timeticks: vchannel "") are flushed, but no position is
// recorded for them (there is no vchannel to record it on, so a retry
// could never succeed); every vchannel of the round gets one.
func TestFlushPositionsOnlyOfVChannels(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "p1", nil)
	defer w.Close(ctx)
	appendN(t, w, "p", 0, 4, "va", "vb")
	if _, err := w.AppendControl(ctx, sl.Message{Type: sl.TypeTimeTick}); err != nil {
		t.Fatal(err)
	}
	sink := &positionLog{}
	var rounds []snapshot.Round
	f := newFlusher(t, store, "p1", func(c *snapshot.FlushConfig) {
		c.Positions = sink
		c.OnRound = func(r snapshot.Round) { rounds = append(rounds, r) }
	})
	if _, err := f.FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	pchannelWide := false
	for _, r := range rounds {
		for _, s := range r.Segments {
			pchannelWide = pchannelWide || s.VChannel == ""
		}
	}
	if !pchannelWide {
		t.Fatal("the round flushed no pchannel-wide message: the test tests nothing")
	}
	slices.Sort(sink.names)
	if !slices.Equal(sink.names, []string{"va", "vb"}) {
		t.Fatalf("positions recorded for %q, want va and vb only", sink.names)
	}
}
