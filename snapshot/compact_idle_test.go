package snapshot_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/snapshot"
)

// TestCompactorLooksAfterFlushes: with a flush count, Run reads the
// checkpoint only at its first look, a look after the count moved, and
// otherwise every tenth Interval; on synctest's clock, so the count of
// reads is the schedule's.
func TestCompactorLooksAfterFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var gets, flushes atomic.Uint64
		store := objstore.Observe(objstore.NewMemory(), func(r objstore.Request) {
			if r.Op == objstore.OpGet || r.Op == objstore.OpGetIfNoneMatch {
				gets.Add(1)
			}
		})
		c, err := snapshot.NewCompactor(snapshot.CompactConfig{PChannel: "p0", Layout: testLayout, Interval: time.Minute,
			Flushes: flushes.Load, Logger: quietLog}, store)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = c.Run(ctx) }()
		defer func() { cancel(); <-done }()

		time.Sleep(5*time.Minute + 30*time.Second)
		synctest.Wait()
		if n := gets.Load(); n != 1 {
			t.Fatalf("5.5 minutes without a flush: %d checkpoint reads, want the first look's 1", n)
		}
		flushes.Add(1)
		time.Sleep(25 * time.Minute)
		synctest.Wait()
		// Looks at 1 min (first), 6 (after the flush), 16 and 26 (every tenth).
		if n := gets.Load(); n != 4 {
			t.Fatalf("30 minutes, one flush: %d checkpoint reads, want 4", n)
		}
	})
}
