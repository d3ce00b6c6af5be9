package system

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// TestPoolParksIdleWriters: a writer that took no request for IdleRelease
// is closed and its lease released with its tail; the parked pchannel
// costs no store request, Hold of it none either, and the next append
// opens a writer again at once (a new term, above the parked tail) with
// the earlier messages still there. Time is synctest's: the test waits on
// the pool's own loop, not on the machine's clock.
func TestPoolParksIdleWriters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var requests atomic.Int64
		store := objstore.Observe(objstore.NewMemory(), func(objstore.Request) { requests.Add(1) })
		sys, err := New(Config{Logger: slog.New(slog.DiscardHandler), TimeTickInterval: -1, IdleRelease: time.Minute}, store)
		if err != nil {
			t.Fatal(err)
		}
		defer sys.Close(ctx)
		pool := sys.Pool()
		term1, acks, err := pool.Append(ctx, "p0", []segmentlog.Message{{Type: segmentlog.TypeData, VChannel: "v", Payload: []byte("one")}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		tail, _, ok := pool.Frontier("p0")
		if !ok || tail != acks[0].ID.Offset+1 {
			t.Fatalf("frontier %d (ok %v) after the ack at %v", tail, ok, acks[0].ID)
		}

		// Still in use at 59 s: nothing parked. (Sleeps here move the
		// bubble's fake clock: the pool's loop runs, no real time passes.)
		time.Sleep(59 * time.Second)
		if _, parked := pool.ParkedTail("p0"); parked {
			t.Fatal("parked before IdleRelease passed")
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		parkedTail, parked := pool.ParkedTail("p0")
		if !parked || parkedTail != tail {
			t.Fatalf("parked %v with tail %d, want the writer's frontier %d", parked, parkedTail, tail)
		}
		l, err := sys.Leases().Describe(ctx, "p0")
		if err != nil {
			t.Fatal(err)
		}
		if !l.Released || l.Tail != tail || l.Term != term1 {
			t.Fatalf("lease after parking: %+v; want released at tail %d, term %d", l, tail, term1)
		}

		// Parked: ten idle minutes and a Hold cost nothing.
		before := requests.Load()
		if err := pool.Hold(ctx, "p0"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n := requests.Load() - before; n != 0 {
			t.Fatalf("a parked pchannel made %d store requests in 10 idle minutes", n)
		}

		// The next append retakes it at once: no expiry wait, a new term.
		start := time.Now()
		term2, acks2, err := pool.Append(ctx, "p0", []segmentlog.Message{{Type: segmentlog.TypeData, VChannel: "v", Payload: []byte("two")}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited > 0 {
			t.Errorf("the append after parking waited %v of the pool's clock for the lease", waited)
		}
		if term2 != term1+1 || acks2[0].ID.Offset < tail {
			t.Fatalf("append after parking: term %d at %v; want term %d at or above %d", term2, acks2[0].ID, term1+1, tail)
		}
		if _, parked := pool.ParkedTail("p0"); parked {
			t.Fatal("still parked after a writer opened")
		}
		sc, err := segmentlog.NewScanner(ctx, segmentlog.ScannerConfig{PChannel: "p0", NoWait: true}, store)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		var got []string
		for {
			d, err := sc.Next(ctx)
			if err != nil {
				break
			}
			got = append(got, string(d.Payload))
		}
		if len(got) != 2 || got[0] != "one" || got[1] != "two" {
			t.Fatalf("read back %q, want one, two", got)
		}
	})
}

// TestPoolKeepsWritersWithOpenTxns: a writer with an open transaction is
// not parked (closing it would abort the transaction).
func TestPoolKeepsWritersWithOpenTxns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		sys, err := New(Config{Logger: slog.New(slog.DiscardHandler), TimeTickInterval: -1, IdleRelease: time.Minute}, objstore.NewMemory())
		if err != nil {
			t.Fatal(err)
		}
		defer sys.Close(ctx)
		pool := sys.Pool()
		_, id, err := pool.BeginTxn(ctx, "p0", "v", 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Minute) // the bubble's fake clock, as above
		synctest.Wait()
		if _, parked := pool.ParkedTail("p0"); parked {
			t.Fatal("a writer with an open transaction was parked")
		}
		if err := pool.AppendTxn(ctx, "p0", id, []segmentlog.Message{{Type: segmentlog.TypeData, VChannel: "v", Payload: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := pool.CommitTxn(ctx, "p0", id); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if _, parked := pool.ParkedTail("p0"); !parked {
			t.Fatal("not parked once the transaction committed and the writer sat idle")
		}
	})
}
