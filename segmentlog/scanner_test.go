package segmentlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// listSegments serves the given deliveries as if they were flushed.
type listSegments struct{ all []sl.Delivery }

func (l listSegments) Open(_ context.Context, cp sl.Checkpoint, from sl.MessageID, vchannels []string) (sl.SegmentIterator, error) {
	var out []sl.Delivery
	for _, d := range l.all {
		if d.ID.Offset < cp.C && !d.ID.Less(from) && (len(vchannels) == 0 || vchannels[0] == d.VChannel) {
			out = append(out, d)
		}
	}
	return &listIter{out}, nil
}

type listIter struct{ rest []sl.Delivery }

func (it *listIter) Next(context.Context) (sl.Delivery, error) {
	if len(it.rest) == 0 {
		return sl.Delivery{}, io.EOF
	}
	d := it.rest[0]
	it.rest = it.rest[1:]
	return d, nil
}
func (it *listIter) Close() error { return nil }

func TestScannerSegmentsThenWAL(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "p1", nil)
	for i := 0; i < 20; i++ {
		if _, err := w.Append(ctx, dataMsg(fmt.Sprintf("v%d", i%2), fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	w.Close(ctx)
	full := scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second)

	// Pretend slots below 18 were flushed and collected.
	cp := sl.Checkpoint{Format: sl.CheckpointFormat, PChannel: "p1", C: 18, MaxTerm: w.Term(), Version: 1}
	body, _ := json.Marshal(cp)
	if _, err := store.Put(ctx, testLayout.Checkpoint("p1"), body); err != nil {
		t.Fatal(err)
	}
	for off := uint64(0); off < 18; off++ {
		store.Delete(ctx, testLayout.WAL("p1", off))
	}
	if _, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: "p1", Layout: testLayout, NoWait: true}, store); !errors.Is(err, sl.ErrTruncated) {
		t.Fatalf("below the checkpoint without segments: %v, want ErrTruncated", err)
	}
	segs := listSegments{full}
	scan := func(from sl.Position, vchans ...string) ([]sl.Delivery, *sl.Scanner) {
		sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: "p1", Layout: testLayout, From: from, NoWait: true, Segments: segs, VChannels: vchans}, store)
		if err != nil {
			t.Fatal(err)
		}
		return testkit.ScanToTail(t, ctx, sc), sc
	}
	if got, _ := scan(sl.Earliest()); !sameDeliveries(got, full) {
		t.Fatalf("segments then WAL: %d messages, want the %d of the full WAL, no gap or duplicate", len(got), len(full))
	}
	for _, i := range []int{0, 5, 9, 10, 15} {
		if got, _ := scan(sl.AtID(full[i].ID)); !sameDeliveries(got, full[i:]) {
			t.Fatalf("from %v: %d messages, want %d", full[i].ID, len(got), len(full)-i)
		}
		if got, _ := scan(sl.AtTimeTick(full[i].TimeTick)); !sameDeliveries(got, full[i:]) {
			t.Fatalf("from tick of %v: %d messages, want %d", full[i].ID, len(got), len(full)-i)
		}
	}
	got, _ := scan(sl.Earliest(), "v1")
	if len(got) != 10 {
		t.Fatalf("vchannel v1 across segments and WAL: %d messages, want 10", len(got))
	}

	// Resume after each delivery continues exactly after it.
	sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: "p1", Layout: testLayout, NoWait: true, Segments: segs}, store)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(full)-1; i++ {
		if _, err := sc.Next(ctx); err != nil {
			t.Fatal(err)
		}
		rest, _ := scan(sc.Resume())
		if !sameDeliveries(rest, full[i+1:]) {
			t.Fatalf("resume after %v: %d messages, want %d", full[i].ID, len(rest), len(full)-i-1)
		}
	}
}

func TestScannerLatestAndCorrupt(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "p1", nil)
	defer w.Close(ctx)
	w.Append(ctx, dataMsg("v", "old"))
	sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: "p1", Layout: testLayout, From: sl.Latest(), PollMax: 10 * time.Millisecond}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	a, _ := w.Append(ctx, dataMsg("v", "new"))
	d, err := sc.Next(ctx)
	if err != nil || string(d.Payload) != "new" || d.ID != a[0].ID {
		t.Fatalf("latest: %v %q, want the message appended after the scanner started", err, d.Payload)
	}
	// A corrupt batch is an error, never skipped silently.
	key := testLayout.WAL("p1", a[0].ID.Offset+1)
	store.Put(ctx, key, []byte("CWAL garbage"))
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := sc.Next(cctx); !errors.Is(err, sl.ErrCorrupt) {
		t.Fatalf("corrupt slot: %v, want ErrCorrupt", err)
	}
}

// TestScannerNoWaitReadsPastCollectedSlots: a NoWait scanner that meets a
// missing slot re-reads the checkpoint before it calls that slot the tail
// (Reading rule 3). Here a flush moves the checkpoint from 10 to 18 and GC
// deletes slots 10–17 while the scanner reads the segments below 10: it
// must go on from segments, not stop at 10 and leave out everything after.
func TestScannerNoWaitReadsPastCollectedSlots(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	w := openWriter(t, store, "p1", nil)
	for i := 0; i < 20; i++ {
		if _, err := w.Append(ctx, dataMsg("v0", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	w.Close(ctx)
	full := scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second)
	putCP := func(c uint64, version uint64) {
		t.Helper()
		cp := sl.Checkpoint{Format: sl.CheckpointFormat, PChannel: "p1", C: c, MaxTerm: w.Term(), Version: version}
		body, _ := json.Marshal(cp)
		if _, err := store.Put(ctx, testLayout.Checkpoint("p1"), body); err != nil {
			t.Fatal(err)
		}
		for off := uint64(0); off < c; off++ {
			store.Delete(ctx, testLayout.WAL("p1", off))
		}
	}
	putCP(10, 1)
	sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: "p1", Layout: testLayout, NoWait: true, Segments: listSegments{full}}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	var got []sl.Delivery
	for i := 0; i < 3; i++ {
		d, err := sc.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d)
	}
	putCP(18, 2) // flushed to 18 and collected, behind the scanner's back
	got = append(got, testkit.ScanToTail(t, ctx, sc)...)
	if !sameDeliveries(got, full) {
		t.Fatalf("NoWait scanner reported the tail after %d of %d messages", len(got), len(full))
	}
}
