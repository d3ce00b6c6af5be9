package segmentlog_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

func TestScannerPause(t *testing.T) {
	onStores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		w := openWriter(t, store, "p1", nil)
		defer w.Close(ctx)
		gate := sl.NewPauseGate(time.Hour)
		paused, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: "p1", Layout: testLayout, Pause: gate}, store)
		if err != nil {
			t.Fatal(err)
		}
		ignoring, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: "p1", Layout: testLayout, Pause: gate, IgnorePause: true}, store)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			if _, err := w.Append(ctx, dataMsg("v", fmt.Sprint(i))); err != nil {
				t.Fatalf("the writer must keep appending during the pause: %v", err)
			}
		}
		if d, err := ignoring.Next(ctx); err != nil || string(d.Payload) != "0" {
			t.Fatalf("a consumer ignoring the pause: %v %q", err, d.Payload)
		}
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if d, err := paused.Next(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("paused scanner delivered %v (%v) during the pause", d.ID, err)
		}
		if st := gate.Stats(); !st.Paused || st.WaitTotal <= 0 {
			t.Fatalf("pause metrics %+v: want paused with wait time", st)
		}
		gate.Resume()
		for i := 0; i < 5; i++ {
			d, err := paused.Next(ctx)
			if err != nil || string(d.Payload) != fmt.Sprint(i) {
				t.Fatalf("after the pause, message %d: %v %q", i, err, d.Payload)
			}
		}
		if gate.Stats().Paused {
			t.Fatal("gate still paused after Resume")
		}
	})
}

// TestIdleTimeTicks measures what an idle pchannel writes: after a run of
// data, one timetick-only batch; then nothing at all.
func TestIdleTimeTicks(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "p1", func(c *sl.WriterConfig) { c.TimeTickInterval = 20 * time.Millisecond })
	defer w.Close(ctx)
	a, err := w.Append(ctx, dataMsg("v", "x"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "a timetick batch after the data", func() bool { return w.Stats().TimeTickBatches > 0 })
	// 15 intervals of idleness: 30 rounds of the timetick loop, none due.
	since := w.Stats().TimeTickChecks
	testkit.Eventually(t, 10*time.Second, "30 more rounds of the timetick loop", func() bool { return w.Stats().TimeTickChecks >= since+30 })
	st := w.Stats()
	if st.TimeTickBatches != 1 || st.BatchesAcked != 2 {
		t.Fatalf("idle pchannel after one append: %d batches, %d timetick-only; want 2 and 1 (runs of empty ticks are not persisted)", st.BatchesAcked, st.TimeTickBatches)
	}
	ticks := scanFiltered(t, store, "p1", sl.ScannerConfig{Types: []sl.MessageType{sl.TypeTimeTick}})
	if len(ticks) != 1 || ticks[0].TimeTick <= a[0].TimeTick {
		t.Fatalf("timetick batches %+v: want one above the data's tick %d", ticks, a[0].TimeTick)
	}
}

// TestPauseGateEndsByItself: a gate with a delay opens when the delay is
// over (run with -race: the timer's Resume and the constructor share the
// timer field).
func TestPauseGateEndsByItself(t *testing.T) {
	for range 20 {
		g := sl.NewPauseGate(time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := g.Wait(ctx); err != nil {
			t.Fatalf("the pause did not end: %v", err)
		}
		cancel()
		if g.Paused() {
			t.Fatal("paused after the delay")
		}
	}
}
