package segmentlog

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzDecodeDedupState checks that the dedup state decoder never panics,
// that every failure wraps ErrCorrupt, and that an object it accepts
// rebuilds a window that encodes to the same bytes.
//
//	go test ./segmentlog -run '^$' -fuzz FuzzDecodeDedupState -fuzztime 1m
func FuzzDecodeDedupState(f *testing.F) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	d := newDedupWindow(time.Hour, 100)
	commitBatch(d, "sdk", 3, 0, 50, 8, TickOf(t0), t0)
	d.commit(broadcastKey("b", "v"), MessageID{Offset: 9}, TickOf(t0)+60, t0)
	d.commit(txnKey(1<<32|2), MessageID{Offset: 10, Index: 3}, TickOf(t0)+70, t0)
	commitBatch(d, "sdk", 3, 50, 2, 7, TickOf(t0)-5, t0) // offset and tick going back
	f.Add(encodeDedupState(d))
	f.Add(encodeDedupState(newDedupWindow(time.Hour, 1)))
	f.Add([]byte("CDDS\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		runs, err := decodeDedupState(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		w := newDedupWindow(time.Duration(1<<62), 1<<30)
		w.restoreState(runs, t0)
		again, err := decodeDedupState(encodeDedupState(w))
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		w2 := newDedupWindow(time.Duration(1<<62), 1<<30)
		w2.restoreState(again, t0)
		if !bytes.Equal(encodeDedupState(w), encodeDedupState(w2)) {
			t.Fatal("a decoded state does not survive a round trip")
		}
	})
}

// TestDedupStateRoundTrip: the object rebuilds the window run for run, and
// is small: about 10 bytes a run, whatever the keys in it.
func TestDedupStateRoundTrip(t *testing.T) {
	t0 := time.Now()
	d := newDedupWindow(10*time.Minute, 1000)
	for b := range uint64(100) {
		commitBatch(d, "sdk", 1, b*1000, 1000, 8+b, TickOf(t0)+b*2000, t0)
	}
	d.commit(broadcastKey("b", "v"), MessageID{Offset: 200}, TickOf(t0)+300_000, t0)
	state := encodeDedupState(d)
	if len(state) > 2000 {
		t.Errorf("100,001 keys in 101 runs encode to %d bytes, want ≤ 2000", len(state))
	}
	runs, err := decodeDedupState(state)
	if err != nil {
		t.Fatal(err)
	}
	r := newDedupWindow(10*time.Minute, 1000)
	r.restoreState(runs, t0)
	if !bytes.Equal(encodeDedupState(r), state) {
		t.Fatal("restored window encodes differently")
	}
	if e, ok := r.lookup(IdemKey{Producer: "sdk", Epoch: 1, Seq: 54_321}); !ok || e.id != (MessageID{Offset: 62, Index: 321}) {
		t.Fatalf("key 54321 after a round trip: %+v %t", e, ok)
	}
	for i, bad := range [][]byte{nil, state[:len(state)-1], append([]byte("XDDS"), state[4:]...)} {
		if _, err := decodeDedupState(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("case %d: %v, want ErrCorrupt", i, err)
		}
	}
}
