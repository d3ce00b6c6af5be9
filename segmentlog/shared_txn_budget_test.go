package segmentlog_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// requestLog counts the store requests of a shared writer by operation.
type requestLog struct {
	mu    sync.Mutex
	ops   map[objstore.Op]int
	bytes int64 // written
}

func (l *requestLog) note(r objstore.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops[r.Op]++
	switch r.Op {
	case objstore.OpPutIfAbsent, objstore.OpPutIfMatch, objstore.OpPut:
		l.bytes += r.Bytes
	}
}

// take returns the counts since the last take and resets them.
func (l *requestLog) take() (map[objstore.Op]int, int, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ops, n, b := l.ops, 0, l.bytes
	for _, c := range ops {
		n += c
	}
	l.ops, l.bytes = map[objstore.Op]int{}, 0
	return ops, n, b
}

// The store requests a shared transaction costs (docs/protocol.md, "Shared
// transactions"): a begin is one PUT, an append one GET and one PUT of the
// whole record, a commit on a warm writer two for the seal, the WAL write,
// and two to mark the record committed. It also logs the bytes the
// appends rewrite: each append writes the whole record again.
func TestSharedTxnRequestBudget(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	log := &requestLog{ops: map[objstore.Op]int{}}
	sw := openShared(t, objstore.Observe(mem, log.note), "p1", "a")
	if _, err := sw.Append(ctx, dataMsg("v", "warm")); err != nil { // the writer's first catch-up
		t.Fatal(err)
	}
	log.take()
	id, err := sw.BeginTxn(ctx, "v", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if ops, n, _ := log.take(); n != 1 || ops[objstore.OpPutIfAbsent] != 1 {
		t.Fatalf("begin made %d requests %v, want one PutIfAbsent", n, ops)
	}
	chunk := strings.Repeat("x", 1024)
	var written []int64
	for range 10 {
		if err := sw.AppendTxn(ctx, id, dataMsg("v", chunk)); err != nil {
			t.Fatal(err)
		}
		ops, n, b := log.take()
		if n != 2 || ops[objstore.OpGet] != 1 || ops[objstore.OpPutIfMatch] != 1 {
			t.Fatalf("append made %d requests %v, want a Get and a PutIfMatch", n, ops)
		}
		written = append(written, b)
	}
	if _, err := sw.CommitTxn(ctx, id); err != nil {
		t.Fatal(err)
	}
	ops, n, b := log.take()
	if ops[objstore.OpPutIfAbsent] != 1 || ops[objstore.OpPutIfMatch] != 2 || n > 6 {
		t.Fatalf("commit made %d requests %v, want 2 for the seal, 2 to mark it committed, the WAL PUT, at most one read of the tail", n, ops)
	}
	t.Logf("begin 1 request; append 2 (record bytes written by appends 1, 5, 10 of 1 KiB each: %d, %d, %d); commit %d requests %v, %d bytes written",
		written[0], written[4], written[9], n, ops, b)
}
