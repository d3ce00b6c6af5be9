package segmentlog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

var testLayout = sl.Layout{Prefix: "unit"}

func newLeases(t testing.TB, store objstore.Store) *coordinator.Leases {
	t.Helper()
	l, err := coordinator.NewLeases(store, testLayout, coordinator.LeaseConfig{TTL: 2 * time.Second, Margin: 500 * time.Millisecond},
		coordinator.WithRequestTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func openWriter(t testing.TB, store objstore.Store, pch string, mod func(*sl.WriterConfig)) *sl.Writer {
	t.Helper()
	cfg := sl.WriterConfig{PChannel: pch, Layout: testLayout, Holder: "test", Logger: quietLog,
		PutTimeout: 300 * time.Millisecond, GetTimeout: 300 * time.Millisecond, RenewInterval: 300 * time.Millisecond,
		TimeTickInterval: -1}
	if mod != nil {
		mod(&cfg)
	}
	w, err := sl.OpenWriter(context.Background(), cfg, store, newLeases(t, store))
	if err != nil {
		t.Fatalf("open writer %s: %v", pch, err)
	}
	return w
}

func dataMsg(v string, payload string) sl.Message {
	return sl.Message{Type: sl.TypeData, VChannel: v, Payload: []byte(payload)}
}

func TestWriterAppendAndScan(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "p1", nil)
	if got := w.Stats().FenceOffset; got != 0 {
		t.Fatalf("fence of a new pchannel at %d, want 0", got)
	}
	var last sl.Ack
	for i := 0; i < 50; i++ {
		acks, err := w.Append(ctx, dataMsg("v1", fmt.Sprint(i)), dataMsg("v2", fmt.Sprint(i)))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if len(acks) != 2 || acks[0].ID.Offset != acks[1].ID.Offset || acks[1].ID.Index != 1 {
			t.Fatalf("append %d: acks %+v: want two messages in one batch", i, acks)
		}
		if i > 0 && (!last.ID.Less(acks[0].ID) || acks[0].TimeTick <= last.TimeTick) {
			t.Fatalf("append %d: ack %+v not after %+v", i, acks[0], last)
		}
		last = acks[1]
	}
	if got := w.Stats().BatchesAcked; got != 50 {
		t.Fatalf("batches acked %d, want 50 (one per sequential append)", got)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := scanAll(t, store, testLayout, "p1", sl.Earliest(), 200*time.Millisecond)
	if len(got) != 100 {
		t.Fatalf("scanned %d messages, want 100", len(got))
	}
	for i, d := range got {
		if want := fmt.Sprint(i / 2); string(d.Payload) != want || d.ID.Offset != uint64(8+i/2) {
			t.Fatalf("message %d: %v %q, want offset %d payload %q", i, d.ID, d.Payload, 8+i/2, want)
		}
	}
	only := scanFiltered(t, store, "p1", sl.ScannerConfig{VChannels: []string{"v2"}})
	if len(only) != 50 || only[0].VChannel != "v2" {
		t.Fatalf("vchannel filter: %d messages", len(only))
	}
}

func scanFiltered(t *testing.T, store objstore.Store, pch string, cfg sl.ScannerConfig) []sl.Delivery {
	t.Helper()
	cfg.PChannel, cfg.Layout = pch, testLayout
	return testkit.Scan(t, context.Background(), store, cfg)
}

func TestWriterGroupCommit(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewFault(objstore.NewMemory(), objstore.FaultConfig{Latency: 5 * time.Millisecond})
	w := openWriter(t, store, "p1", nil)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := w.Append(ctx, dataMsg("v", fmt.Sprint(i))); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.MessagesAcked != 200 || st.BatchesAcked >= 200 {
		t.Fatalf("200 concurrent appends took %d batches for %d messages: group commit did not coalesce", st.BatchesAcked, st.MessagesAcked)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWriterTakeoverAfterRelease(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w1 := openWriter(t, store, "p1", nil)
	a1, err := w1.Append(ctx, dataMsg("v", "one"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	w2 := openWriter(t, store, "p1", nil)
	if w2.Term() <= w1.Term() {
		t.Fatalf("term %d after %d", w2.Term(), w1.Term())
	}
	if got, want := w2.Stats().FenceOffset, a1[0].ID.Offset+1; got != want {
		t.Fatalf("second fence at %d, want %d (right after the released tail)", got, want)
	}
	a2, err := w2.Append(ctx, dataMsg("v", "two"))
	if err != nil {
		t.Fatal(err)
	}
	if a2[0].TimeTick <= a1[0].TimeTick {
		t.Fatalf("timetick %d after failover is not above %d", a2[0].TimeTick, a1[0].TimeTick)
	}
	if _, err := w1.Append(ctx, dataMsg("v", "zombie")); !errors.Is(err, sl.ErrClosed) {
		t.Fatalf("append on a closed writer: %v, want ErrClosed", err)
	}
	w2.Close(ctx)
	got := scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second)
	if len(got) != 2 || string(got[0].Payload) != "one" || string(got[1].Payload) != "two" || got[1].Term != w2.Term() {
		t.Fatalf("scan after failover: %+v", got)
	}
}

func TestWriterLiveLeaseNotTakenOver(t *testing.T) {
	store := objstore.NewMemory()
	w1 := openWriter(t, store, "p1", nil)
	defer w1.Close(context.Background())
	_, err := sl.OpenWriter(context.Background(), sl.WriterConfig{PChannel: "p1", Layout: testLayout, Logger: quietLog}, store, newLeases(t, store))
	if !errors.Is(err, coordinator.ErrLeaseHeld) {
		t.Fatalf("second writer on a live lease: %v, want ErrLeaseHeld", err)
	}
}

func TestWriterIdempotentAppend(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "p1", nil)
	key := sl.IdemKey{Producer: "prod", Epoch: 1, Seq: 7}
	m := dataMsg("v", "x")
	m.Key = key
	first, err := w.Append(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := w.Append(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].Duplicate || again[0].ID != first[0].ID {
		t.Fatalf("retry of key: %+v, want duplicate of %+v", again[0], first[0])
	}
	w.Close(ctx)
	// The window survives failover: rebuilt from the WAL.
	w2 := openWriter(t, store, "p1", nil)
	defer w2.Close(ctx)
	after, err := w2.Append(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if !after[0].Duplicate || after[0].ID != first[0].ID {
		t.Fatalf("retry after failover: %+v, want duplicate of %+v", after[0], first[0])
	}
	if n := len(scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second)); n != 1 {
		t.Fatalf("%d copies delivered, want 1", n)
	}
}

func TestWriterSync(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "p1", nil)
	defer w.Close(ctx)
	a, _ := w.Append(ctx, dataMsg("v", "a"))
	tk, err := w.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tk <= a[0].TimeTick {
		t.Fatalf("sync %d not above the acked tick %d", tk, a[0].TimeTick)
	}
	b, _ := w.Append(ctx, dataMsg("v", "b"))
	if b[0].TimeTick <= tk {
		t.Fatalf("append after sync got tick %d ≤ %d", b[0].TimeTick, tk)
	}
}

func TestWriterRejectsBadAppends(t *testing.T) {
	ctx := context.Background()
	w := openWriter(t, objstore.NewMemory(), "p1", func(c *sl.WriterConfig) { c.MaxBatchBytes = 1024 })
	defer w.Close(ctx)
	for name, m := range map[string]sl.Message{
		"control type": {Type: sl.TypeFlush, VChannel: "v"},
		"bad vchannel": {Type: sl.TypeData, VChannel: "../x"},
		"too large":    {Type: sl.TypeData, VChannel: "v", Payload: make([]byte, 2048)},
		"txn":          {Type: sl.TypeData, VChannel: "v", TxnID: 3},
	} {
		if _, err := w.Append(ctx, m); err == nil {
			t.Errorf("%s: appended", name)
		}
	}
	if _, err := w.Append(ctx, sl.Message{Type: sl.TypeData, VChannel: "v", Payload: make([]byte, 2048)}); !errors.Is(err, sl.ErrTooLarge) {
		t.Errorf("too large: %v, want ErrTooLarge", err)
	}
}

func TestWriterAppendAt(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "p1", nil)
	defer w.Close(ctx)
	first := w.Stats().Frontier
	a, err := w.AppendAt(ctx, first, dataMsg("v", "at-first"), dataMsg("v", "same-batch"))
	if err != nil || a[0].ID.Offset != first || a[1].ID.Offset != first {
		t.Fatalf("append at the next slot %d: %v %+v", first, err, a)
	}
	if _, err := w.AppendAt(ctx, first, dataMsg("v", "stale")); !errors.Is(err, sl.ErrOffsetMismatch) {
		t.Fatalf("append at a taken slot: %v, want ErrOffsetMismatch", err)
	}
	if _, err := w.AppendAt(ctx, first+5, dataMsg("v", "future")); !errors.Is(err, sl.ErrOffsetMismatch) {
		t.Fatalf("append at a future slot: %v, want ErrOffsetMismatch", err)
	}
	// Racing plain appends never share a conditional append's batch.
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); w.Append(ctx, dataMsg("v", "plain")) }()
	}
	var won int
	for i := 0; i < 20; i++ {
		next := w.Stats().Frontier
		if acks, err := w.AppendAt(ctx, next, dataMsg("v", "cond")); err == nil {
			won++
			if acks[0].ID.Offset != next {
				t.Fatalf("conditional append at %d landed at %v", next, acks[0].ID)
			}
		} else if !errors.Is(err, sl.ErrOffsetMismatch) {
			t.Fatal(err)
		}
	}
	wg.Wait()
	got := scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second)
	perSlot := map[uint64][]string{}
	for _, d := range got {
		perSlot[d.ID.Offset] = append(perSlot[d.ID.Offset], string(d.Payload))
	}
	conds := 0
	for off, ps := range perSlot {
		for _, p := range ps {
			if p == "cond" {
				conds++
				if len(ps) != 1 {
					t.Fatalf("slot %d mixes a conditional append with others: %q", off, ps)
				}
			}
			if p == "stale" || p == "future" {
				t.Fatalf("a refused conditional append was written at %d", off)
			}
		}
	}
	if conds != won {
		t.Fatalf("%d conditional appends delivered, %d acknowledged", conds, won)
	}
}

// TestStoppedWriterReleasesLease: a writer that stops by itself (here its
// PUTs fail until the lease deadline) must not keep its pchannel: it stops
// renewing and releases, so the next holder need not wait for an expiry.
func TestStoppedWriterReleasesLease(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	faulty := objstore.NewFault(mem, objstore.FaultConfig{ErrorRates: map[objstore.Op]float64{objstore.OpPutIfAbsent: 1}})
	faulty.SetEnabled(false)
	w := openWriter(t, faulty, "p1", func(c *sl.WriterConfig) {
		c.RenewInterval = 50 * time.Millisecond
		c.PutRetryLimit = 300 * time.Millisecond
	})
	faulty.SetEnabled(true)
	if _, err := w.Append(ctx, dataMsg("v", "x")); err == nil {
		t.Fatal("append succeeded with every PUT failing")
	}
	faulty.SetEnabled(false)
	leases := newLeases(t, mem)
	testkit.EventuallyNil(t, 5*time.Second, "the stopped writer releases its lease", func() error {
		l, err := leases.Describe(ctx, "p1")
		if err == nil && !l.Released {
			err = fmt.Errorf("lease %+v", l)
		}
		return err
	})
	w2 := openWriter(t, mem, "p1", nil)
	defer w2.Close(ctx)
	w.Close(ctx)
}

func TestWriterRaiseTickFloor(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "p1", nil)
	a, _ := w.Append(ctx, dataMsg("v", "before"))
	floor := a[0].TimeTick + sl.TickSpan(500*time.Millisecond)
	if err := w.RaiseTickFloor(floor); err != nil {
		t.Fatal(err)
	}
	b, _ := w.Append(ctx, dataMsg("v", "after"))
	if b[0].TimeTick <= floor {
		t.Fatalf("tick %d after raising the floor to %d", b[0].TimeTick, floor)
	}
	if err := w.RaiseTickFloor(sl.TickOf(time.Now().Add(time.Hour))); err == nil {
		t.Fatal("raised the floor past tt_max")
	}
	w.Close(ctx)
	// The floor outlives the writer: the next holder starts above it.
	w2 := openWriter(t, store, "p1", nil)
	defer w2.Close(ctx)
	c, _ := w2.Append(ctx, dataMsg("v", "next term"))
	if c[0].TimeTick <= floor {
		t.Fatalf("next holder's tick %d is not above the raised floor %d", c[0].TimeTick, floor)
	}
}
