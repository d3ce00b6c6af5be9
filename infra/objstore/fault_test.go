package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/objstoretest"
)

// With nothing to inject, the wrapper must be invisible.
func TestFaultAcceptance(t *testing.T) {
	objstoretest.Run(t, func(*testing.T) objstore.Store {
		return objstore.NewFault(objstore.NewMemory(), objstore.FaultConfig{Seed: 1})
	})
}

// faultTrace runs a fixed sequence of calls and records which failed.
func faultTrace(t *testing.T, cfg objstore.FaultConfig) []bool {
	t.Helper()
	f := objstore.NewFault(objstore.NewMemory(), cfg)
	ctx := t.Context()
	var trace []bool
	for i := range 200 {
		key := fmt.Sprintf("k%d", i%17)
		_, err := f.Put(ctx, key, []byte("x"))
		trace = append(trace, err != nil)
		_, err = f.Get(ctx, key)
		trace = append(trace, err != nil && !errors.Is(err, objstore.ErrNotFound))
	}
	f.Drain()
	return trace
}

func TestFaultDeterministic(t *testing.T) {
	cfg := objstore.FaultConfig{Seed: 42, ErrorRate: 0.2, LostReplyRate: 0.1, DelayedApplyRate: 0.1, DelayedApply: time.Millisecond}
	a, b := faultTrace(t, cfg), faultTrace(t, cfg)
	if !slices.Equal(a, b) {
		t.Fatal("two runs with one seed injected different faults")
	}
	cfg.Seed = 43
	if c := faultTrace(t, cfg); slices.Equal(a, c) {
		t.Fatal("different seeds injected identical faults")
	}
	n := 0
	for _, failed := range a {
		if failed {
			n++
		}
	}
	if n < 40 || n > 160 {
		t.Fatalf("%d of %d calls failed; the rates make that implausible", n, len(a))
	}
}

func TestFaultErrorRates(t *testing.T) {
	mem := objstore.NewMemory()
	f := objstore.NewFault(mem, objstore.FaultConfig{Seed: 7, ErrorRates: map[objstore.Op]float64{objstore.OpPutIfAbsent: 1}})
	ctx := t.Context()
	_, err := f.PutIfAbsent(ctx, "k", []byte("x"), nil)
	if !errors.Is(err, objstore.ErrTransient) || !objstore.IsRetryable(err) {
		t.Fatalf("injected failure: err = %v, want a retryable ErrTransient", err)
	}
	if _, err := mem.Head(ctx, "k"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("an injected failure reached the inner store: %v", err)
	}
	if _, err := f.Put(ctx, "k", []byte("x")); err != nil {
		t.Fatalf("Put, whose rate is 0: %v", err)
	}
	f.SetEnabled(false)
	if _, err := f.PutIfAbsent(ctx, "k2", []byte("x"), nil); err != nil {
		t.Fatalf("PutIfAbsent with faults disabled: %v", err)
	}
	st := f.Stats()
	if st.Calls[objstore.OpPutIfAbsent] != 2 || st.Injected[objstore.OpPutIfAbsent] != 1 || st.Calls[objstore.OpPut] != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestFaultLostReplyApplies(t *testing.T) {
	mem := objstore.NewMemory()
	f := objstore.NewFault(mem, objstore.FaultConfig{Seed: 1, LostReplyRate: 1})
	ctx := t.Context()
	_, err := f.PutIfAbsent(ctx, "k", []byte("landed"), nil)
	if !errors.Is(err, objstore.ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lost reply: err = %v, want ErrTransient and DeadlineExceeded", err)
	}
	o, err := mem.Get(ctx, "k")
	if err != nil || string(o.Body) != "landed" {
		t.Fatalf("lost-reply write not applied: %q, %v", o.Body, err)
	}
	// The retry a caller sends finds its own write: ErrExists, then a read
	// back shows identical bytes.
	f.SetEnabled(false)
	if _, err := f.PutIfAbsent(ctx, "k", []byte("landed"), nil); !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("retry after a lost reply: err = %v, want ErrExists", err)
	}
	if st := f.Stats(); st.LostReplies != 1 {
		t.Fatalf("LostReplies = %d, want 1", st.LostReplies)
	}
}

func TestFaultDelayedApply(t *testing.T) {
	mem := objstore.NewMemory()
	f := objstore.NewFault(mem, objstore.FaultConfig{Seed: 1, DelayedApplyRate: 1, DelayedApply: 300 * time.Millisecond})
	ctx := t.Context()
	body := []byte("late")
	_, err := f.Put(ctx, "p", body)
	if !errors.Is(err, objstore.ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("delayed apply: err = %v, want ErrTransient and DeadlineExceeded", err)
	}
	copy(body, "XXXX") // the caller reuses its buffer; the held write must not change
	if _, err := mem.Head(ctx, "p"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("the held write landed before its delay: Head err = %v", err)
	}

	// A zombie's held PutIfAbsent arrives after a new writer took the slot:
	// it must be refused by the inner store.
	if _, err := f.PutIfAbsent(ctx, "slot", []byte("zombie"), nil); !objstore.IsRetryable(err) {
		t.Fatalf("held PutIfAbsent: err = %v, want a retryable timeout", err)
	}
	f.SetEnabled(false)
	if _, err := f.PutIfAbsent(ctx, "slot", []byte("fence"), nil); err != nil {
		t.Fatalf("PutIfAbsent of the fence: %v", err)
	}
	f.Drain()
	if o, err := mem.Get(ctx, "p"); err != nil || string(o.Body) != "late" {
		t.Fatalf("held Put after Drain: %q, %v; want \"late\"", o.Body, err)
	}
	if o, err := mem.Get(ctx, "slot"); err != nil || string(o.Body) != "fence" {
		t.Fatalf("slot after Drain: %q, %v; want the fence", o.Body, err)
	}
	if st := f.Stats(); st.DelayedWrites != 2 || st.DelayedApplied != 1 || st.DelayedRejected != 1 {
		t.Fatalf("stats = %+v, want 2 held writes: 1 applied, 1 rejected", st)
	}
}

func TestFaultLatencyHonoursContext(t *testing.T) {
	f := objstore.NewFault(objstore.NewMemory(), objstore.FaultConfig{Seed: 1, Latency: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.Get(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get under an hour of latency: err = %v, want DeadlineExceeded", err)
	}
}

func TestFaultConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg objstore.FaultConfig
		ok  bool
	}{
		{objstore.FaultConfig{}, true},
		{objstore.FaultConfig{ErrorRate: 0.5, LostReplyRate: 0.3, DelayedApplyRate: 0.7}, true},
		{objstore.FaultConfig{ErrorRate: 1.5}, false},
		{objstore.FaultConfig{ErrorRates: map[objstore.Op]float64{objstore.OpList: -0.1}}, false},
		{objstore.FaultConfig{LostReplyRate: 0.6, DelayedApplyRate: 0.6}, false},
		{objstore.FaultConfig{Jitter: -time.Second}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
}
