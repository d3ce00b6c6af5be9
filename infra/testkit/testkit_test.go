package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

func TestMain(m *testing.M) { os.Exit(miniotest.RunMain(m)) }

// fatalTB records what a helper fails with instead of failing the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs f with a fatalTB on a goroutine of its own (Fatalf ends
// it) and returns what f failed with, "" if nothing.
func failure(t *testing.T, f func(tb testing.TB)) string {
	ftb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); f(ftb) }()
	<-done
	return ftb.msg
}

// script delivers its messages, then its end (ErrTail or another error).
type script struct {
	msgs []sl.Delivery
	end  error
}

func (s *script) Next(context.Context) (sl.Delivery, error) {
	if len(s.msgs) == 0 {
		return sl.Delivery{}, s.end
	}
	d := s.msgs[0]
	s.msgs = s.msgs[1:]
	return d, nil
}

func TestScanToTail(t *testing.T) {
	three := []sl.Delivery{{ID: sl.MessageID{Offset: 0}}, {ID: sl.MessageID{Offset: 1}}, {ID: sl.MessageID{Offset: 1, Index: 1}}}
	got := testkit.ScanToTail(t, t.Context(), &script{msgs: three, end: sl.ErrTail})
	if len(got) != 3 || got[2].ID != three[2].ID {
		t.Fatalf("got %v, want %v", got, three)
	}
	wrapped := fmt.Errorf("read slot 2: %w", sl.ErrTail)
	if got := testkit.ScanToTail(t, t.Context(), &script{msgs: three[:1], end: wrapped}); len(got) != 1 {
		t.Fatalf("a wrapped ErrTail: got %v, want one message", got)
	}
	msg := failure(t, func(tb testing.TB) {
		testkit.ScanToTail(tb, t.Context(), &script{msgs: three[:2], end: errors.New("boom")})
	})
	if !strings.Contains(msg, "after 2 messages: boom") {
		t.Fatalf("a scan error failed the test with %q", msg)
	}
}

// TestScan reads back what a writer appended, on memory and on MinIO, and
// checks that two MinIO stores of one bucket do not see each other.
func TestScan(t *testing.T) {
	for name, store := range map[string]objstore.Store{"memory": objstore.NewMemory(), "minio": testkit.MinIOStore(t, "testkit")} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			leases, err := coordinator.NewLeases(store, sl.Layout{}, coordinator.LeaseConfig{TTL: 4 * time.Second, Margin: time.Second},
				coordinator.WithRequestTimeout(500*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			w, err := sl.OpenWriter(ctx, sl.WriterConfig{PChannel: "p1", Holder: "test", TimeTickInterval: -1}, store, leases)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close(context.Background())
			var acks []sl.Ack
			for i := range 3 {
				a, err := w.Append(ctx, sl.Message{Type: sl.TypeData, VChannel: "v", Payload: fmt.Append(nil, i)})
				if err != nil {
					t.Fatal(err)
				}
				acks = append(acks, a...)
			}
			got := testkit.Scan(t, ctx, store, sl.ScannerConfig{PChannel: "p1"})
			if len(got) != 3 {
				t.Fatalf("scanned %d messages, want 3", len(got))
			}
			for i, d := range got {
				if d.ID != acks[i].ID || string(d.Payload) != fmt.Sprint(i) {
					t.Errorf("message %d: %v %q, want %v %q", i, d.ID, d.Payload, acks[i].ID, fmt.Sprint(i))
				}
			}
			if got := testkit.Scan(t, ctx, store, sl.ScannerConfig{PChannel: "p1", From: sl.AtID(acks[2].ID)}); len(got) != 1 {
				t.Fatalf("from %v: %d messages, want 1", acks[2].ID, len(got))
			}
		})
	}
	a, b := testkit.MinIOStore(t, "testkit"), testkit.MinIOStore(t, "testkit")
	if _, err := a.PutIfAbsent(t.Context(), "k", []byte("a"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(t.Context(), "k"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("a second store sees the first one's object: %v", err)
	}
}

func TestEventually(t *testing.T) {
	n := 0
	testkit.Eventually(t, 5*time.Second, "the third look", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("looked %d times, want 3", n)
	}
	if !testkit.Within(t, 5*time.Second, func() bool { n++; return n == 5 }) {
		t.Fatal("Within: a condition that holds at the fifth look did not hold")
	}
	if testkit.Within(t, 30*time.Millisecond, func() bool { return false }) {
		t.Fatal("Within: a condition that never holds held")
	}
	msg := failure(t, func(tb testing.TB) {
		testkit.Eventually(tb, 30*time.Millisecond, "never", func() bool { return false })
	})
	if msg != "never: not within 30ms" {
		t.Fatalf("failed with %q", msg)
	}
	msg = failure(t, func(tb testing.TB) {
		testkit.EventuallyNil(tb, 30*time.Millisecond, "the lease lapses", func() error { return errors.New("held by a until 12:00") })
	})
	if msg != "the lease lapses: not within 30ms: held by a until 12:00" {
		t.Fatalf("failed with %q", msg)
	}
	// A condition that fails the test ends the wait at once, not at the
	// deadline: were it to wait, this test would not end.
	looks := 0
	msg = failure(t, func(tb testing.TB) {
		testkit.EventuallyNil(tb, time.Hour, "the server listens", func() error {
			if looks++; looks == 2 {
				tb.Fatalf("the server exited")
			}
			return errors.New("no address yet")
		})
	})
	if msg != "the server exited" || looks != 2 {
		t.Fatalf("failed with %q after %d looks, want the condition's own failure at the second", msg, looks)
	}
}

func TestAwait(t *testing.T) {
	parked := make(chan struct{})
	go close(parked)
	testkit.Await(t, 5*time.Second, "the goroutine parks", parked)
	msg := failure(t, func(tb testing.TB) {
		testkit.Await(tb, 30*time.Millisecond, "the goroutine parks", make(chan struct{}))
	})
	if msg != "the goroutine parks: not within 30ms" {
		t.Fatalf("failed with %q", msg)
	}
}
