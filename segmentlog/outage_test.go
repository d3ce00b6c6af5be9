package segmentlog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// TestStoreOutage stops MinIO under load and starts it again: producers get
// retryable errors while it is down (never a false "fenced" or a silent
// loss), writers are reopened once it is back, and every acknowledged
// append is delivered exactly once afterwards.
func TestStoreOutage(t *testing.T) {
	srv := miniotest.Get(t)
	store := testkit.MinIOStore(t, "segmentlog")
	ctx := context.Background()
	leases, err := coordinator.NewLeases(store, testLayout, coordinator.LeaseConfig{TTL: time.Second, Margin: 350 * time.Millisecond},
		coordinator.WithRequestTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	open := func() *sl.Writer {
		for i := 0; ; i++ {
			w, err := sl.OpenWriter(ctx, sl.WriterConfig{PChannel: "outage", Layout: testLayout, Logger: quietLog,
				PutTimeout: 200 * time.Millisecond, GetTimeout: 200 * time.Millisecond, RenewInterval: 200 * time.Millisecond}, store, leases)
			if err == nil {
				return w
			}
			if i > 300 {
				t.Fatalf("writer did not come back after the outage: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	var mu sync.Mutex
	acked := map[sl.IdemKey]sl.Ack{}
	retryable := 0
	w := open()
	var wmu sync.Mutex
	current := func() *sl.Writer { wmu.Lock(); defer wmu.Unlock(); return w }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq := uint64(1)
			for {
				select {
				case <-stop:
					return
				default:
				}
				key := sl.IdemKey{Producer: fmt.Sprintf("out-p%d", p), Epoch: 1, Seq: seq}
				cw := current()
				acks, err := cw.Append(ctx, sl.Message{Type: sl.TypeData, VChannel: "v", Key: key, Payload: []byte(fmt.Sprint(seq))})
				switch {
				case err == nil:
					mu.Lock()
					acked[key] = acks[0]
					mu.Unlock()
					seq++
				case errors.Is(err, sl.ErrFenced):
					t.Errorf("an outage made a writer report fenced: %v", err)
					return
				default:
					// Retryable: the same key goes to the next writer.
					mu.Lock()
					retryable++
					mu.Unlock()
					wmu.Lock()
					if w == cw && w.Err() != nil {
						w.Close(ctx)
						w = open()
					}
					wmu.Unlock()
				}
			}
		}()
	}
	// The load is under way before the outage.
	testkit.Eventually(t, 30*time.Second, "20 appends acked before the outage", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 20
	})
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the outage: three lease TTLs, so the writer stops
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// Service resumes by itself: wait for new acks after the restart.
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	testkit.EventuallyNil(t, 60*time.Second, "50 acks after MinIO came back", func() error {
		mu.Lock()
		defer mu.Unlock()
		if n := len(acked); n < before+50 {
			return fmt.Errorf("%d acks before, %d now", before, n)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	current().Close(ctx)

	got := scanAll(t, store, testLayout, "outage", sl.Earliest(), time.Second)
	seen := map[sl.IdemKey]sl.Delivery{}
	for _, d := range got {
		if _, dup := seen[d.Key]; dup {
			t.Errorf("key %+v delivered twice", d.Key)
		}
		seen[d.Key] = d
	}
	for k, a := range acked {
		if d, ok := seen[k]; !ok || d.ID != a.ID {
			t.Errorf("acked %+v at %v: delivered %v (found %v)", k, a.ID, d.ID, ok)
		}
	}
	if retryable == 0 {
		t.Error("no producer saw an error during the outage: the outage did not happen")
	}
	t.Logf("outage: %d appends acked, %d retryable errors during the outage, %d delivered, 0 lost", len(acked), retryable, len(got))
}
