package segmentlog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// batchMsg is a keyed 200-byte message: it counts 234 bytes against
// MaxBatchBytes (payload 200, vchannel 1, producer 1, overhead 32).
func batchMsg(producer string, seq uint64) sl.Message {
	p := fmt.Sprintf("%s-%06d", producer, seq)
	return sl.Message{Type: sl.TypeData, VChannel: "v", Payload: []byte(p + strings.Repeat(".", 200-len(p))),
		Key: sl.IdemKey{Producer: producer, Epoch: 1, Seq: seq}}
}

const batchMsgBytes = 234

// checkPacked fails unless acks are in offset order and packed: each
// message in the batch of the one before it, at the next index, or at
// index 0 of the next slot.
func checkPacked(t *testing.T, acks []sl.Ack) {
	t.Helper()
	if err := packed(acks); err != nil {
		t.Fatal(err)
	}
}

func packed(acks []sl.Ack) error {
	for i := 1; i < len(acks); i++ {
		a, b := acks[i-1], acks[i]
		same := b.ID.Offset == a.ID.Offset && b.ID.Index == a.ID.Index+1
		next := b.ID.Offset == a.ID.Offset+1 && b.ID.Index == 0
		if !(same || next) || b.TimeTick <= a.TimeTick {
			return fmt.Errorf("ack %d %+v does not follow ack %d %+v", i, b, i-1, a)
		}
	}
	return nil
}

// checkDelivered fails unless the pchannel holds exactly want's messages,
// in order, each at its ack.
func checkDelivered(t *testing.T, store objstore.Store, pch string, want []sl.Message, acks []sl.Ack) {
	t.Helper()
	got := scanAll(t, store, testLayout, pch, sl.Earliest(), 200*time.Millisecond)
	if len(got) != len(want) {
		t.Fatalf("scanned %d messages, want %d", len(got), len(want))
	}
	for i, d := range got {
		if d.Key != want[i].Key || string(d.Payload) != string(want[i].Payload) || d.ID != acks[i].ID || d.TimeTick != acks[i].TimeTick {
			t.Fatalf("message %d: key %+v at %v tick %d, want key %+v at %v tick %d",
				i, d.Key, d.ID, d.TimeTick, want[i].Key, acks[i].ID, acks[i].TimeTick)
		}
	}
}

// TestAppendBatchSplitsAtTheBatchLimit: one call larger than a batch lands
// in as few batches as the limit allows, each message acked where it
// landed, in order.
func TestAppendBatchSplitsAtTheBatchLimit(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "split", func(c *sl.WriterConfig) { c.MaxBatchBytes = 10 * batchMsgBytes })
	msgs := make([]sl.Message, 95)
	for i := range msgs {
		msgs[i] = batchMsg("p", uint64(i))
	}
	acks, err := w.AppendBatch(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != len(msgs) {
		t.Fatalf("%d acks for %d messages", len(acks), len(msgs))
	}
	checkPacked(t, acks)
	for i, a := range acks {
		if a.Duplicate || a.ID.Index != uint32(i%10) {
			t.Fatalf("ack %d: %+v, want index %d of a full batch of 10, not a duplicate", i, a, i%10)
		}
	}
	if got := w.Stats().BatchesAcked; got != 10 {
		t.Fatalf("%d batches for 95 messages of which 10 fit in one; want 10", got)
	}
	if msgs[0].TimeTick != 0 {
		t.Fatal("AppendBatch stamped the caller's messages")
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, store, "split", msgs, acks)
}

// TestAppendBatchKeys: a key already acked, or repeated within the call,
// is acked as a duplicate of its first copy and not written again.
func TestAppendBatchKeys(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "keys", func(c *sl.WriterConfig) { c.MaxBatchBytes = 4 * batchMsgBytes })
	first := make([]sl.Message, 10)
	for i := range first {
		first[i] = batchMsg("p", uint64(i))
	}
	acks1, err := w.AppendBatch(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	// Seqs 5..14, and seq 12 twice: 5..9 are duplicates of the first call,
	// 10..14 new, the second 12 a duplicate of the first 12.
	var second []sl.Message
	for seq := uint64(5); seq < 15; seq++ {
		second = append(second, batchMsg("p", seq))
		if seq == 12 {
			second = append(second, batchMsg("p", seq))
		}
	}
	acks2, err := w.AppendBatch(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	if len(acks2) != len(second) {
		t.Fatalf("%d acks for %d messages", len(acks2), len(second))
	}
	for i := range 5 {
		if a := acks2[i]; !a.Duplicate || a.ID != acks1[5+i].ID || a.TimeTick != acks1[5+i].TimeTick {
			t.Fatalf("seq %d again: %+v, want a duplicate of %+v", 5+i, a, acks1[5+i])
		}
	}
	fresh := []sl.Ack{acks2[5], acks2[6], acks2[7], acks2[9], acks2[10]} // seqs 10, 11, 12, 13, 14
	for _, a := range fresh {
		if a.Duplicate {
			t.Fatalf("a new key acked as a duplicate: %+v", a)
		}
	}
	checkPacked(t, append(acks1[len(acks1)-1:len(acks1):len(acks1)], fresh...))
	if d := acks2[8]; !d.Duplicate || d.ID != acks2[7].ID {
		t.Fatalf("seq 12 twice in one call: second ack %+v, want a duplicate of %+v", d, acks2[7])
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := append(first, second[5], second[6], second[7], second[9], second[10])
	checkDelivered(t, store, "keys", want, append(acks1, fresh...))
}

// TestAppendBatchRefuses: an empty call, a message that fits in no batch
// and a message Append refuses write nothing.
func TestAppendBatchRefuses(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "refuse", func(c *sl.WriterConfig) { c.MaxBatchBytes = 4 * batchMsgBytes })
	defer w.Close(ctx)
	big := sl.Message{Type: sl.TypeData, VChannel: "v", Payload: make([]byte, 4*batchMsgBytes)}
	for _, tc := range []struct {
		name string
		msgs []sl.Message
		is   error
	}{
		{"empty", nil, nil},
		{"too large", []sl.Message{batchMsg("p", 1), big}, sl.ErrTooLarge},
		{"control", []sl.Message{batchMsg("p", 1), {Type: sl.TypeFlush, VChannel: "v"}}, sl.ErrInvalidMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acks, err := w.AppendBatch(ctx, tc.msgs)
			if err == nil || acks != nil || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("acks %v, err %v; want no acks and an error wrapping %v", acks, err, tc.is)
			}
		})
	}
	if got := w.Stats().BatchesAcked; got != 0 {
		t.Fatalf("%d batches written by refused appends", got)
	}
}

// failingStore fails every PUT of a WAL slot at or above from, for good
// (not a transient error); from < 0 fails none.
type failingStore struct {
	objstore.Store
	from atomic.Int64
}

var errDiskOnFire = errors.New("disk on fire")

func (s *failingStore) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	if i := strings.LastIndex(key, "/wal/"); i >= 0 && s.from.Load() >= 0 {
		var pch string
		var off int64
		if _, err := fmt.Sscanf(strings.ReplaceAll(key[i+len("/wal/"):], "/", " "), "%s %d", &pch, &off); err == nil && off >= s.from.Load() {
			return "", errDiskOnFire
		}
	}
	return s.Store.PutIfAbsent(ctx, key, body, meta)
}

// TestAppendBatchFailsAfterAPrefix: when a batch in the middle of a call
// fails, the call returns the acks of the messages before it, which are
// exactly the ones delivered, and frees the other keys for a retry.
func TestAppendBatchFailsAfterAPrefix(t *testing.T) {
	ctx := context.Background()
	store := &failingStore{Store: objstore.NewMemory()}
	store.from.Store(-1)
	w := openWriter(t, store, "prefix", func(c *sl.WriterConfig) { c.MaxBatchBytes = 10 * batchMsgBytes })
	store.from.Store(int64(w.Stats().Frontier) + 3)
	msgs := make([]sl.Message, 100)
	for i := range msgs {
		msgs[i] = batchMsg("p", uint64(i))
	}
	acks, err := w.AppendBatch(ctx, msgs)
	if !errors.Is(err, errDiskOnFire) {
		t.Fatalf("err %v, want the failing batch's", err)
	}
	if len(acks) != 30 {
		t.Fatalf("%d acks; want 30, the three batches that landed", len(acks))
	}
	checkPacked(t, acks)
	_ = w.Close(ctx) // the writer stopped; it says why
	checkDelivered(t, store.Store, "prefix", msgs[:30], acks)

	// The keys of the rest are free: a new writer appends them after the
	// 30, and acks the 30 as duplicates.
	store.from.Store(-1)
	w2 := openWriter(t, store, "prefix", nil)
	acks2, err := w2.AppendBatch(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range acks2 {
		if dup := i < 30; a.Duplicate != dup || (dup && a.ID != acks[i].ID) {
			t.Fatalf("retry, message %d: %+v; want duplicate=%v (first copy %v)", i, a, dup, acks[min(i, 29)].ID)
		}
	}
	checkPacked(t, acks2[30:])
	if err := w2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, store.Store, "prefix", msgs, append(acks, acks2[30:]...))
}

// TestAppendBatchConcurrentOnFaults: producers append with AppendBatch
// beside plain Appends on a store that fails, loses replies and applies
// writes late. Each call's acks are in offset order; every acked key is
// delivered once, at its ack; a failed call's messages are retried with
// their keys until acked, and none is delivered twice. In "retried", the
// writer retries every failed PUT until it lands; in "writers stop", a
// slot that does not land within 20 ms stops the writer, and calls fail
// part way (the producers go on with a new writer).
func TestAppendBatchConcurrentOnFaults(t *testing.T) {
	t.Run("retried", func(t *testing.T) { appendBatchOnFaults(t, 0.1, 0) })
	t.Run("writers stop", func(t *testing.T) { appendBatchOnFaults(t, 0.5, 20*time.Millisecond) })
}

func appendBatchOnFaults(t *testing.T, errorRate float64, retryLimit time.Duration) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	fault := objstore.NewFault(mem, objstore.FaultConfig{Seed: 22, ErrorRates: map[objstore.Op]float64{objstore.OpPutIfAbsent: errorRate},
		LostReplyRate: 0.05, DelayedApplyRate: 0.05, DelayedApply: 20 * time.Millisecond})
	mod := func(c *sl.WriterConfig) { c.MaxBatchBytes, c.PutRetryLimit = 8*batchMsgBytes, retryLimit }
	fault.SetEnabled(false)
	var wmu sync.Mutex
	w := openWriter(t, fault, "faults", mod)
	fault.SetEnabled(true)
	current := func() *sl.Writer { wmu.Lock(); defer wmu.Unlock(); return w }
	reopen := func(failed *sl.Writer) {
		wmu.Lock()
		defer wmu.Unlock()
		if w != failed || w.Err() == nil {
			return
		}
		fault.SetEnabled(false) // the release and the open see no faults
		_ = w.Close(ctx)        // stopped: it says why
		w = openWriter(t, fault, "faults", mod)
		fault.SetEnabled(true)
	}

	const producers, calls, perCall = 4, 15, 13
	var mu sync.Mutex
	acked := map[sl.IdemKey]sl.Ack{}
	var failedCalls atomic.Int64
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			name := fmt.Sprintf("b%d", p)
			for c := range calls {
				msgs := make([]sl.Message, perCall)
				for i := range msgs {
					msgs[i] = batchMsg(name, uint64(c*perCall+i))
				}
				for len(msgs) > 0 {
					cw := current()
					acks, err := cw.AppendBatch(ctx, msgs)
					var fresh []sl.Ack // a retry's acks start with duplicates of what landed
					for _, a := range acks {
						if !a.Duplicate {
							fresh = append(fresh, a)
						}
					}
					if err := packed(fresh); err != nil {
						t.Errorf("producer %s: %v", name, err)
						return
					}
					mu.Lock()
					for i, a := range acks {
						acked[msgs[i].Key] = a
					}
					mu.Unlock()
					msgs = msgs[len(acks):]
					if err != nil {
						if errors.Is(err, sl.ErrFenced) {
							t.Errorf("producer %s: fenced with no other writer: %v", name, err)
							return
						}
						failedCalls.Add(1)
						reopen(cw)
					}
				}
			}
		})
		wg.Go(func() { // a plain Append producer beside it
			name := fmt.Sprintf("a%d", p)
			for seq := uint64(0); seq < calls*3; {
				cw := current()
				m := batchMsg(name, seq)
				acks, err := cw.Append(ctx, m)
				if err != nil {
					reopen(cw)
					continue
				}
				mu.Lock()
				acked[m.Key] = acks[0]
				mu.Unlock()
				seq++
			}
		})
	}
	wg.Wait()
	fault.SetEnabled(false)
	fault.Drain()
	if err := current().Close(ctx); err != nil {
		t.Fatal(err)
	}
	if want := producers * (calls*perCall + calls*3); len(acked) != want {
		t.Fatalf("%d keys acked, want %d", len(acked), want)
	}
	got := scanAll(t, mem, testLayout, "faults", sl.Earliest(), 200*time.Millisecond)
	seen := map[sl.IdemKey]bool{}
	for _, d := range got {
		if seen[d.Key] {
			t.Fatalf("key %+v delivered twice", d.Key)
		}
		seen[d.Key] = true
		if a, ok := acked[d.Key]; ok && a.ID != d.ID {
			t.Fatalf("key %+v acked at %v, delivered at %v", d.Key, a.ID, d.ID)
		}
	}
	for k := range acked {
		if !seen[k] {
			t.Fatalf("key %+v acked but not delivered", k)
		}
	}
	st := fault.Stats()
	t.Logf("%d messages delivered, %d AppendBatch calls failed and were retried; faults: %d errors, %d lost replies, %d late writes",
		len(got), failedCalls.Load(), st.Injected[objstore.OpPutIfAbsent], st.LostReplies, st.DelayedWrites)
	if st.Injected[objstore.OpPutIfAbsent] == 0 || st.LostReplies == 0 {
		t.Fatal("no fault was injected: the test tested nothing")
	}
	if retryLimit > 0 && failedCalls.Load() == 0 {
		t.Fatal("no AppendBatch call failed: the failure path was not tested")
	}
}
