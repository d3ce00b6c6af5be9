package segmentlog_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// gatedStore holds WAL PUTs, once armed, until released.
type gatedStore struct {
	objstore.Store
	armed   atomic.Bool
	started chan struct{}
	release chan struct{}
}

func (s *gatedStore) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	if strings.Contains(key, "wal/") && s.armed.CompareAndSwap(true, false) {
		close(s.started)
		<-s.release
	}
	return s.Store.PutIfAbsent(ctx, key, body, meta)
}

// TestWriterHolds: a key is held from the moment its append is queued (its
// PUT still in flight), stays held once acked, is held again by the next
// holder (the window is rebuilt from the WAL), and a key never appended is
// not held.
func TestWriterHolds(t *testing.T) {
	ctx := context.Background()
	store := &gatedStore{Store: objstore.NewMemory(), started: make(chan struct{}), release: make(chan struct{})}
	w := openWriter(t, store, "p1", nil)
	key := sl.IdemKey{Producer: "prod", Epoch: 1, Seq: 7}
	if w.Holds(key) {
		t.Fatal("holds a key never appended")
	}
	m := dataMsg("v", "x")
	m.Key = key
	store.armed.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := w.Append(ctx, m)
		done <- err
	}()
	<-store.started
	held := w.Holds(key)
	close(store.release)
	if !held {
		t.Fatal("a key whose append is queued (PUT in flight) is not held")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !w.Holds(key) || w.Holds(sl.IdemKey{Producer: "prod", Epoch: 1, Seq: 8}) {
		t.Fatal("after the ack: the acked key not held, or the next one held")
	}
	w.Close(ctx)
	w2 := openWriter(t, store, "p1", nil)
	defer w2.Close(ctx)
	if !w2.Holds(key) {
		t.Fatal("the next holder does not hold a key the WAL has")
	}
}
