package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCurve: the n-th pause lies in [d/2, d] for d = Min·2ⁿ capped at Max,
// and the draws are not all equal (there is jitter).
func TestCurve(t *testing.T) {
	for _, p := range []Policy{
		{Min: 2 * time.Millisecond, Max: 64 * time.Millisecond},
		{Min: 5 * time.Millisecond, Max: 500 * time.Millisecond},
		{Min: 100 * time.Millisecond, Max: 5 * time.Second},
		{Min: 50 * time.Microsecond, Max: 5 * time.Millisecond},
		{Min: time.Second, Max: time.Second},
	} {
		t.Run(p.Min.String()+"-"+p.Max.String(), func(t *testing.T) {
			seen := map[int]map[time.Duration]bool{}
			for range 50 {
				pauses := p.Start()
				for n := range 12 {
					d := min(p.Min<<n, p.Max)
					got := pauses.Next()
					// The library rounds its draw; allow it a nanosecond.
					if got < d/2-time.Nanosecond || got > d {
						t.Fatalf("pause %d = %v, want in [%v, %v]", n, got, d/2, d)
					}
					if seen[n] == nil {
						seen[n] = map[time.Duration]bool{}
					}
					seen[n][got] = true
				}
			}
			for n, draws := range seen {
				if len(draws) < 10 {
					t.Errorf("pause %d: only %d distinct values in 50 loops: no jitter", n, len(draws))
				}
			}
		})
	}
}

// TestReset: after Reset the curve starts again from Min.
func TestReset(t *testing.T) {
	p := Policy{Min: time.Millisecond, Max: time.Second}
	pauses := p.Start()
	for range 8 {
		pauses.Next()
	}
	pauses.Reset()
	if got := pauses.Next(); got > time.Millisecond {
		t.Fatalf("first pause after Reset = %v, want at most Min (1ms)", got)
	}
}

func TestZeroPolicyNeverPauses(t *testing.T) {
	pauses := Policy{}.Start()
	for range 5 {
		if d := pauses.Next(); d != 0 {
			t.Fatalf("zero policy paused %v", d)
		}
	}
}

// TestSleepEndsWithContext: a pause far longer than the test returns as
// soon as its context ends, with the context's error.
func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- Sleep(ctx, time.Hour) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep(0) on an ended context = %v, want context.Canceled", err)
	}
	if err := Sleep(t.Context(), 0); err != nil {
		t.Fatalf("Sleep(0) = %v, want nil", err)
	}
	if err := Sleep(t.Context(), time.Microsecond); err != nil {
		t.Fatalf("Sleep(1µs) = %v, want nil", err)
	}
}
