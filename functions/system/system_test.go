package system

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/cairnlog/cairn/infra/objstore"
)

// laxStore ignores If-None-Match, as a store without conditional writes
// does: the probe must refuse it.
type laxStore struct{ objstore.Store }

func (l laxStore) PutIfAbsent(ctx context.Context, key string, body []byte, _ map[string]string) (string, error) {
	return l.Put(ctx, key, body)
}

// TestProbeOncePerProcess: New sends no request; Probe refuses a store
// that ignores conditional writes (again on every call: a failure is not
// remembered), and once it passed on a good store it sends no request
// again — a warm Lambda container probes once.
func TestProbeOncePerProcess(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)

	var laxRequests atomic.Int64
	lax := objstore.Observe(laxStore{objstore.NewMemory()}, func(objstore.Request) { laxRequests.Add(1) })
	bad, err := New(Config{Logger: quiet}, lax)
	if err != nil {
		t.Fatal(err)
	}
	if n := laxRequests.Load(); n != 0 {
		t.Fatalf("New sent %d store requests, want none", n)
	}
	for range 2 {
		if err := bad.Probe(ctx); !errors.Is(err, objstore.ErrUnsupported) {
			t.Fatalf("probe of a store that ignores If-None-Match: %v, want ErrUnsupported", err)
		}
	}

	var requests atomic.Int64
	good := objstore.Observe(objstore.NewMemory(), func(objstore.Request) { requests.Add(1) })
	sys, err := New(Config{Logger: quiet}, good)
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Probe(ctx); err != nil {
		t.Fatalf("probe of the memory store: %v", err)
	}
	first := requests.Load()
	if first == 0 {
		t.Fatal("the probe sent no request: it proved nothing")
	}
	if err := sys.Probe(ctx); err != nil || requests.Load() != first {
		t.Fatalf("second probe: %v, %d more requests; want none", err, requests.Load()-first)
	}
}

// TestNewRefusesBadConfig: New applies the defaults, then refuses what the
// system cannot run with.
func TestNewRefusesBadConfig(t *testing.T) {
	if _, err := New(Config{PChannels: []string{"p0", "p0"}}, objstore.NewMemory()); err == nil {
		t.Fatal("a pchannel listed twice: no error")
	}
	if _, err := New(Config{WriteMode: "sometimes"}, objstore.NewMemory()); err == nil {
		t.Fatal("an unknown write mode: no error")
	}
}
