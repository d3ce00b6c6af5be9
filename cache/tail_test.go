package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/testkit"
)

// waitResult is what a Tail.Wait returned.
type waitResult struct {
	frontier uint64
	err      error
}

// startWait runs Tail.Wait in a goroutine and returns where its result arrives.
func startWait(ctx context.Context, tl *Tail, p string, after uint64) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		f, err := tl.Wait(ctx, p, after)
		ch <- waitResult{f, err}
	}()
	return ch
}

// countParked makes tl count its parked waiters (the onPark hook).
func countParked(tl *Tail) *atomic.Int64 {
	var n atomic.Int64
	tl.onPark = func(delta int) { n.Add(int64(delta)) }
	return &n
}

// blocked waits until n waiters are parked in tl and checks that the one
// of ch has not returned: a waiter that returns too early never parks (or
// leaves), so this fails on it instead of sleeping past it.
func blocked(t *testing.T, ch <-chan waitResult, parked *atomic.Int64, n int64) {
	t.Helper()
	var early *waitResult
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("%d waiters parked", n), func() bool {
		select {
		case r := <-ch:
			early = &r
			return true
		default:
			return parked.Load() == n
		}
	})
	if early != nil {
		t.Fatalf("Wait returned early: %+v", *early)
	}
}

func result(t *testing.T, ch <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return")
		return waitResult{}
	}
}

func TestTailPublishWakesWaiter(t *testing.T) {
	var tl Tail
	parked := countParked(&tl)
	tl.Publish("p", 5) // offsets 0..4 acked
	if f, err := tl.Wait(context.Background(), "p", 4); err != nil || f != 5 {
		t.Fatalf("Wait(after 4) = %d, %v; want 5 at once", f, err)
	}
	ch := startWait(context.Background(), &tl, "p", 5)
	blocked(t, ch, parked, 1)
	tl.Publish("p", 5) // not above 5: no wakeup that returns
	blocked(t, ch, parked, 1)
	tl.Publish("p", 6)
	if r := result(t, ch); r.err != nil || r.frontier != 6 {
		t.Fatalf("Wait(after 5) = %+v, want frontier 6", r)
	}
	if f, ok := tl.Frontier("p"); !ok || f != 6 {
		t.Fatalf("Frontier = %d, %v; want 6, true", f, ok)
	}
}

func TestTailManyWaiters(t *testing.T) {
	var tl Tail
	parked := countParked(&tl)
	tl.Publish("p", 0)
	const n = 200
	chans := make([]<-chan waitResult, n)
	for i := range chans {
		chans[i] = startWait(context.Background(), &tl, "p", uint64(i%10))
	}
	tl.Publish("q", 0) // q live but not above 0 (before the waiter: on a q with no writer it would return at once)
	other := startWait(context.Background(), &tl, "q", 0)
	for f := uint64(1); f <= 10; f++ {
		tl.Publish("p", f)
	}
	for i, ch := range chans {
		r := result(t, ch)
		if r.err != nil || r.frontier <= uint64(i%10) {
			t.Fatalf("waiter %d (after %d) = %+v", i, i%10, r)
		}
	}
	blocked(t, other, parked, 1) // another pchannel's waiter is not woken for good
	tl.Forget("q")
	if r := result(t, other); !errors.Is(r.err, ErrNoWriter) {
		t.Fatalf("q waiter after Forget = %+v, want ErrNoWriter", r)
	}
}

func TestTailContext(t *testing.T) {
	var tl Tail
	parked := countParked(&tl)
	tl.Publish("p", 3)
	ctx, cancel := context.WithCancel(context.Background())
	ch := startWait(ctx, &tl, "p", 3)
	blocked(t, ch, parked, 1)
	cancel()
	if r := result(t, ch); !errors.Is(r.err, context.Canceled) || r.frontier != 3 {
		t.Fatalf("Wait after cancel = %+v, want frontier 3 and context.Canceled", r)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := tl.Wait(ctx, "p", 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past deadline = %v, want DeadlineExceeded", err)
	}
	// A done context does not hide a frontier already above after.
	if f, err := tl.Wait(ctx, "p", 2); err != nil || f != 3 {
		t.Fatalf("Wait(after 2) with done ctx = %d, %v; want 3, nil", f, err)
	}
}

func TestTailMonotone(t *testing.T) {
	var tl Tail
	tl.Publish("p", 10)
	tl.Publish("p", 4)
	tl.Publish("p", 10)
	if f, ok := tl.Frontier("p"); !ok || f != 10 {
		t.Fatalf("Frontier = %d, %v; want 10, true", f, ok)
	}
	if f, err := tl.Wait(context.Background(), "p", 7); err != nil || f != 10 {
		t.Fatalf("Wait(after 7) = %d, %v; want 10", f, err)
	}
	// Monotone across a Forget: a new writer's lower value is ignored.
	tl.Forget("p")
	tl.Publish("p", 8)
	if f, ok := tl.Frontier("p"); !ok || f != 10 {
		t.Fatalf("Frontier after Forget and Publish(8) = %d, %v; want 10, true", f, ok)
	}
}

func TestTailForget(t *testing.T) {
	var tl Tail
	parked := countParked(&tl)
	if f, err := tl.Wait(context.Background(), "never", 0); !errors.Is(err, ErrNoWriter) || f != 0 {
		t.Fatalf("Wait on an unpublished pchannel = %d, %v; want 0, ErrNoWriter", f, err)
	}
	if f, ok := tl.Frontier("never"); ok || f != 0 {
		t.Fatalf("Frontier of an unpublished pchannel = %d, %v; want 0, false", f, ok)
	}

	tl.Publish("p", 3)
	var chans []<-chan waitResult
	for range 20 {
		chans = append(chans, startWait(context.Background(), &tl, "p", 3))
	}
	blocked(t, chans[0], parked, 20)
	tl.Forget("p")
	for _, ch := range chans {
		if r := result(t, ch); !errors.Is(r.err, ErrNoWriter) || r.frontier != 3 {
			t.Fatalf("waiter after Forget = %+v, want frontier 3 and ErrNoWriter", r)
		}
	}
	if f, ok := tl.Frontier("p"); ok || f != 3 {
		t.Fatalf("Frontier after Forget = %d, %v; want 3, false", f, ok)
	}
	// Below the frontier still answers without a writer: those offsets are acked.
	if f, err := tl.Wait(context.Background(), "p", 2); err != nil || f != 3 {
		t.Fatalf("Wait(after 2) after Forget = %d, %v; want 3, nil", f, err)
	}
	if _, err := tl.Wait(context.Background(), "p", 3); !errors.Is(err, ErrNoWriter) {
		t.Fatalf("Wait(after 3) after Forget = %v, want ErrNoWriter", err)
	}
	tl.Forget("p") // twice is harmless
	tl.Forget("unknown")

	// A new writer makes it live again.
	ch := startWait(context.Background(), &tl, "p", 3)
	if r := result(t, ch); !errors.Is(r.err, ErrNoWriter) {
		t.Fatalf("Wait before the new writer = %+v, want ErrNoWriter", r)
	}
	tl.Publish("p", 3)
	ch = startWait(context.Background(), &tl, "p", 3)
	blocked(t, ch, parked, 1)
	tl.Publish("p", 4)
	if r := result(t, ch); r.err != nil || r.frontier != 4 {
		t.Fatalf("Wait with the new writer = %+v, want 4", r)
	}
}

// TestTailConcurrent has a writer publish while readers follow the frontier
// one wakeup at a time; every reader must see every step of it, in order.
func TestTailConcurrent(t *testing.T) {
	var tl Tail
	const last = 2000
	tl.Publish("p", 0)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var after uint64
			for after < last {
				f, err := tl.Wait(context.Background(), "p", after)
				if err != nil {
					t.Errorf("Wait(after %d): %v", after, err)
					return
				}
				if f <= after {
					t.Errorf("Wait(after %d) = %d", after, f)
					return
				}
				after = f
			}
		})
	}
	for f := uint64(1); f <= last; f++ {
		tl.Publish("p", f)
	}
	wg.Wait()
}
