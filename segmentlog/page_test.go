package segmentlog_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cairnlog/cairn/cache"
	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// TestScannerPage: a page returns what is there without waiting, within
// its message and byte limits, and resumes exactly after itself; an empty
// page waits for the first append (woken by the in-process writer, with
// BeforeWait as the hook that proves it waited) and then returns at once;
// an empty page whose wait runs out is empty, not an error; a BeforeWait
// error ends the page; the scanner's NoWait setting survives the page.
func TestScannerPage(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	tail := &cache.Tail{}
	w := openWriter(t, store, "pg", func(c *sl.WriterConfig) { c.Tail = tail })
	defer w.Close(ctx)
	for i := range 5 {
		if _, err := w.Append(ctx, dataMsg("v", fmt.Sprintf("m%d-%s", i, string(make([]byte, 100))))); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: "pg", Layout: testLayout, Tail: tail, NoWait: true}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	noWaitExpected := func() {
		t.Helper()
		if _, err := sc.Next(ctx); !errors.Is(err, sl.ErrTail) {
			t.Fatalf("Next after a page: %v, want ErrTail: the page left the scanner waiting", err)
		}
	}

	page, err := sc.Page(ctx, sl.PageLimits{Max: 2, MaxBytes: 1 << 20, Wait: time.Hour, BeforeWait: func() error {
		t.Fatal("a page with messages there waited")
		return nil
	}})
	if err != nil || len(page) != 2 || page[1].ID.Offset != page[0].ID.Offset+1 {
		t.Fatalf("page of 2: %+v, %v", page, err)
	}
	first := page[0].ID.Offset // the first data slot, after the fence window
	if r := sc.Resume(); r != sl.AtID(sl.NextID(page[1].ID)) {
		t.Fatalf("resume after the page: %v, want right after %v", r, page[1].ID)
	}
	// 150 bytes: the first message always, the second passes the budget.
	page, err = sc.Page(ctx, sl.PageLimits{Max: 10, MaxBytes: 150, Wait: time.Hour})
	if err != nil || len(page) != 2 || page[0].ID.Offset != first+2 {
		t.Fatalf("page within 150 bytes: %d messages from %v, %v; want 2 from offset %d", len(page), page, err, first+2)
	}
	page, err = sc.Page(ctx, sl.PageLimits{Max: 10, MaxBytes: 1 << 20, Wait: time.Hour})
	if err != nil || len(page) != 1 || page[0].ID.Offset != first+4 {
		t.Fatalf("last page: %+v, %v", page, err)
	}

	// Empty: waits, and the append made once it waits ends the wait.
	appended := make(chan error, 1)
	page, err = sc.Page(ctx, sl.PageLimits{Max: 10, MaxBytes: 1 << 20, Wait: time.Hour, BeforeWait: func() error {
		go func() {
			_, err := w.Append(ctx, dataMsg("v", "late"))
			appended <- err
		}()
		return nil
	}})
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	if err != nil || len(page) != 1 || string(page[0].Payload) != "late" {
		t.Fatalf("page after the wait: %+v, %v", page, err)
	}
	noWaitExpected()

	// Empty, and nothing comes: an empty page when the wait is over.
	waited := false
	page, err = sc.Page(ctx, sl.PageLimits{Max: 10, MaxBytes: 1 << 20, Wait: 20 * time.Millisecond, BeforeWait: func() error {
		waited = true
		return nil
	}})
	if err != nil || len(page) != 0 || !waited {
		t.Fatalf("page with nothing to read: %+v, %v, waited %v", page, err, waited)
	}
	// No wait at all: no BeforeWait either.
	page, err = sc.Page(ctx, sl.PageLimits{Max: 10, MaxBytes: 1 << 20, BeforeWait: func() error {
		t.Fatal("a page without a wait called BeforeWait")
		return nil
	}})
	if err != nil || len(page) != 0 {
		t.Fatalf("page without a wait: %+v, %v", page, err)
	}
	busy := errors.New("too many waiters")
	if _, err := sc.Page(ctx, sl.PageLimits{Max: 10, MaxBytes: 1 << 20, Wait: time.Hour, BeforeWait: func() error { return busy }}); !errors.Is(err, busy) {
		t.Fatalf("page whose BeforeWait failed: %v, want its error", err)
	}
	noWaitExpected()

	// A caller gone while waiting gets the empty page, not an error.
	cctx, cancel := context.WithCancel(ctx)
	page, err = sc.Page(cctx, sl.PageLimits{Max: 10, MaxBytes: 1 << 20, Wait: time.Hour, BeforeWait: func() error {
		cancel()
		return nil
	}})
	if err != nil || len(page) != 0 {
		t.Fatalf("page whose caller left: %+v, %v", page, err)
	}
}
