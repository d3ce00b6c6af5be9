package segmentlog_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// TestSyncUnderConcurrentAppends: while four producers append (timetick
// batches on too), Sync is called over and over. For
// every t it returns, the messages with a tick ≤ t that a scan finds right
// after Sync returned are all there will ever be (I4): nothing with a
// tick ≤ t lands later, and every append acked before Sync was called has
// a tick ≤ t or lands above it in order.
func TestSyncUnderConcurrentAppends(t *testing.T) {
	onStores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		w := openWriter(t, store, "p1", func(c *sl.WriterConfig) { c.TimeTickInterval = 20 * time.Millisecond })
		defer w.Close(ctx)

		countUpTo := func(tick uint64) int {
			n := 0
			for _, d := range scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second) {
				if d.TimeTick <= tick {
					n++
				}
			}
			return n
		}
		type syncSeen struct {
			tick     uint64
			seen     int    // messages with a tick ≤ tick right after Sync returned
			maxAcked uint64 // highest tick acked before Sync was called
		}
		var (
			mu       sync.Mutex
			maxAcked uint64
			acked    int
		)
		pctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for p := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; pctx.Err() == nil && i < 120; i++ {
					a, err := w.Append(ctx, dataMsg(fmt.Sprintf("v%d", p), fmt.Sprintf("%d/%d", p, i)))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					maxAcked, acked = max(maxAcked, a[0].TimeTick), acked+1
					mu.Unlock()
					time.Sleep(time.Millisecond) // a few thousand appends, not millions: each check scans them all
				}
			}()
		}
		var syncs []syncSeen
		for range 10 {
			mu.Lock()
			before := maxAcked
			mu.Unlock()
			tk, err := w.Sync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tk <= before {
				t.Fatalf("Sync returned %d, not above the tick %d acked before it was called", tk, before)
			}
			syncs = append(syncs, syncSeen{tick: tk, seen: countUpTo(tk), maxAcked: before})
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		wg.Wait()
		for i, s := range syncs {
			if later := countUpTo(s.tick); later != s.seen {
				t.Errorf("sync %d returned %d with %d messages at or below it; %d now", i, s.tick, s.seen, later)
			}
			if i > 0 && s.tick <= syncs[i-1].tick {
				t.Errorf("sync %d returned %d after %d", i, s.tick, syncs[i-1].tick)
			}
		}
		t.Logf("%d appends acked during %d Syncs", acked, len(syncs))
	})
}
