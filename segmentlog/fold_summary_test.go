package segmentlog

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

func summaryBatch() Batch {
	k := func(p string, seq uint64) IdemKey { return IdemKey{Producer: p, Epoch: 2, Seq: seq} }
	t0 := TickOf(time.Now()) // keys age by their ticks
	return Batch{Kind: KindData, Term: 7, Offset: 40, Nonce: [16]byte{1, 2, 3}, Messages: []Message{
		{Type: TypeData, VChannel: "v", TimeTick: t0 + 0, Key: k("a/b c", 5)},
		{Type: TypeData, VChannel: "v", TimeTick: t0 + 1, Key: k("a/b c", 6)},
		{Type: TypeData, VChannel: "v", TimeTick: t0 + 2},
		{Type: TypeData, VChannel: "v", TimeTick: t0 + 3, Key: k("a/b c", 7)}, // a new run: index gap
		{Type: TypeData, VChannel: "v", TimeTick: t0 + 4, Key: k("z", 1)},
	}}
}

// A summary folds to exactly what the batch folds to: the same keys at the
// same IDs and ticks, the same last tick.
func TestFoldSummaryMatchesBatch(t *testing.T) {
	b := summaryBatch()
	s := summarize(&b)
	if s == "" || len(s) > maxFoldMeta || strings.ContainsAny(s, "\n\r") {
		t.Fatalf("summary %q", s)
	}
	sum, err := parseSummary(s)
	if err != nil {
		t.Fatal(err)
	}
	whole := &Writer{dedup: newDedupWindow(DefaultDedupWindow, 100), cfg: WriterConfig{Now: time.Now}, grant: LeaseGrant{Term: 7}}
	head := &Writer{dedup: newDedupWindow(DefaultDedupWindow, 100), cfg: WriterConfig{Now: time.Now}, grant: LeaseGrant{Term: 7}}
	whole.nonceB, head.nonceB = b.Nonce, b.Nonce
	var f1, f2 TermFilter
	if err := whole.fold(&b, &f1); err != nil {
		t.Fatal(err)
	}
	hb := Batch{Kind: sum.kind, Term: b.Term, Offset: b.Offset, Nonce: sum.nonce}
	if err := head.foldSlot(&hb, &sum, &f2); err != nil {
		t.Fatal(err)
	}
	if whole.clock.last != head.clock.last || whole.clock.last != b.LastTimeTick() {
		t.Fatalf("last tick: whole %d, summary %d", whole.clock.last, head.clock.last)
	}
	for _, m := range b.Messages {
		if m.Key.IsZero() {
			continue
		}
		a, _ := whole.dedup.lookup(m.Key)
		c, ok := head.dedup.lookup(m.Key)
		if !ok || a.id != c.id || a.tick != c.tick {
			t.Fatalf("key %+v: whole %+v, summary %+v (found %v)", m.Key, a, c, ok)
		}
	}
}

// A slot whose summary is missing or unreadable is read whole.
func TestHeadSlotFallsBackToTheBody(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	b := summaryBatch()
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	layout := Layout{}
	for i, meta := range []map[string]string{
		{"term": "7"},
		{"term": "7", foldMetaKey: "2 something newer"},
		{"term": "7", foldMetaKey: summarize(&b)},
	} {
		b.Offset = uint64(i)
		data, _ = b.Encode()
		if _, err := store.PutIfAbsent(ctx, layout.WAL("p", uint64(i)), data, meta); err != nil {
			t.Fatal(err)
		}
		r := headSlot(ctx, store, layout, "p", uint64(i), 0x7fffffff)
		if r.err != nil || r.missing {
			t.Fatalf("slot %d: %+v", i, r)
		}
		if wantSummary := i == 2; (r.summary != nil) != wantSummary || (!wantSummary && len(r.batch.Messages) != len(b.Messages)) {
			t.Fatalf("slot %d: summary %v, %d messages", i, r.summary != nil, len(r.batch.Messages))
		}
	}
}

func FuzzParseSummary(f *testing.F) {
	b := summaryBatch()
	f.Add(summarize(&b))
	f.Add("1 0 00000000000000000000000000000000 0 0")
	f.Add("1 0 zz 1 1 a:1:1:1:0:1")
	f.Fuzz(func(t *testing.T, s string) {
		sum, err := parseSummary(s)
		if err != nil {
			return
		}
		for _, r := range sum.runs {
			if r.count == 0 || int(r.index)+int(r.count) > sum.messages || r.key.Producer == "" {
				t.Fatalf("accepted a run out of bounds: %+v of %d messages", r, sum.messages)
			}
		}
	})
}
