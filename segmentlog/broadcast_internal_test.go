package segmentlog

import (
	"testing"
	"time"
)

// TestDedupKeepsBroadcastKeysForTheirRetention: plain keys leave the window
// after D or beyond the key limit; broadcast keys stay for
// BroadcastRetention whatever the count, and survive a snapshot and restore
// (checkpoint, recovery) in both lists.
func TestDedupKeepsBroadcastKeysForTheirRetention(t *testing.T) {
	t0 := time.Now()
	d := newDedupWindow(10*time.Minute, 2)
	plain := func(i uint64) IdemKey { return IdemKey{Producer: "p", Epoch: 1, Seq: i} }
	bk := broadcastKey("b1", "v1")
	d.commit(bk, MessageID{Offset: 1}, TickOf(t0), t0)
	for i := range uint64(5) {
		d.commit(plain(i), MessageID{Offset: 2 + i}, TickOf(t0), t0)
	}
	if _, ok := d.lookup(plain(0)); ok {
		t.Fatal("plain key kept beyond the key limit")
	}
	if _, ok := d.lookup(bk); !ok {
		t.Fatal("broadcast key evicted by the key limit")
	}
	restored := newDedupWindow(10*time.Minute, 2)
	restored.restore(d.snapshot(), t0.Add(time.Hour))
	if _, ok := restored.lookup(plain(4)); ok {
		t.Fatal("plain key kept past D")
	}
	if e, ok := restored.lookup(bk); !ok || e.id.Offset != 1 {
		t.Fatalf("broadcast key after an hour: %+v, %t", e, ok)
	}
	restored.evict(t0.Add(BroadcastRetention + time.Second))
	if _, ok := restored.lookup(bk); ok {
		t.Fatal("broadcast key kept past BroadcastRetention")
	}
}
