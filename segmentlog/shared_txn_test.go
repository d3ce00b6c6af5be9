package segmentlog_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// txnPayloads returns the payloads delivered in transaction id, checking
// that they came in one batch (all or nothing, I8).
func txnPayloads(t *testing.T, got []sl.Delivery, id uint64) []string {
	t.Helper()
	var out []string
	var offset uint64
	for _, d := range got {
		if d.TxnID != id {
			continue
		}
		if out != nil && d.ID.Offset != offset {
			t.Fatalf("I8: transaction %d delivered across slots %d and %d", id, offset, d.ID.Offset)
		}
		offset = d.ID.Offset
		out = append(out, string(d.Payload))
	}
	return out
}

// A transaction begun in one environment, appended to in two others and
// committed in a fourth is written as one batch at its commit, with plain
// appends of every environment around it; a commit retried in yet another
// environment is a duplicate, and nothing is left in the store.
func TestSharedTxnAcrossEnvironments(t *testing.T) {
	onStores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		envs := []*sl.SharedWriter{
			openShared(t, store, "p1", "env-a"), openShared(t, store, "p1", "env-b"),
			openShared(t, store, "p1", "env-c"), openShared(t, store, "p1", "env-d"),
		}
		id, err := envs[0].BeginTxn(ctx, "vt", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := envs[1].AppendTxn(ctx, id, dataMsg("vt", "t1"), dataMsg("vt", "t2")); err != nil {
			t.Fatal(err)
		}
		if _, err := envs[2].Append(ctx, dataMsg("vt", "plain")); err != nil {
			t.Fatal(err)
		}
		if err := envs[2].AppendTxn(ctx, id, dataMsg("vt", "t3")); err != nil {
			t.Fatal(err)
		}
		if err := envs[0].AppendTxn(ctx, id, dataMsg("other", "x")); !errors.Is(err, sl.ErrTxnInvalid) {
			t.Fatalf("message of another vchannel: %v, want ErrTxnInvalid", err)
		}
		acks, err := envs[3].CommitTxn(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(acks) != 4 || acks[3].Duplicate {
			t.Fatalf("commit acks %+v, want 3 bodies and the commit", acks)
		}
		again, err := envs[1].CommitTxn(ctx, id)
		if err != nil || len(again) != 1 || !again[0].Duplicate || again[0].ID != acks[3].ID || again[0].TimeTick != acks[3].TimeTick {
			t.Fatalf("I8: retried commit in another environment: %v %+v, want the commit's ack %+v as a duplicate", err, again, acks[3])
		}
		if err := envs[0].AppendTxn(ctx, id, dataMsg("vt", "late")); !errors.Is(err, sl.ErrTxnNotFound) {
			t.Fatalf("append after the commit: %v, want ErrTxnNotFound", err)
		}
		got := scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second)
		if p := txnPayloads(t, got, id); strings.Join(p, ",") != "t1,t2,t3" {
			t.Fatalf("I8: transaction delivered %q, want t1,t2,t3", p)
		}
		if len(got) != 4 || string(got[0].Payload) != "plain" || got[1].ID != acks[0].ID || got[3].TimeTick != acks[2].TimeTick {
			t.Fatalf("I1: delivered %+v, acks %+v", got, acks)
		}
		if n := countTxnRecords(t, store); n != 0 {
			t.Fatalf("%d transaction records left after the commit", n)
		}

		// A rollback in one environment ends the transaction for every other.
		id2, err := envs[2].BeginTxn(ctx, "vt", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := envs[0].AppendTxn(ctx, id2, dataMsg("vt", "r1")); err != nil {
			t.Fatal(err)
		}
		if err := envs[1].RollbackTxn(ctx, id2); err != nil {
			t.Fatal(err)
		}
		if _, err := envs[3].CommitTxn(ctx, id2); !errors.Is(err, sl.ErrTxnNotFound) {
			t.Fatalf("commit after rollback: %v, want ErrTxnNotFound", err)
		}
		if got := scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second); len(got) != 4 {
			t.Fatalf("I8: a rolled-back transaction delivered: %d messages", len(got))
		}
	})
}

func countTxnRecords(t *testing.T, store objstore.Store) int {
	t.Helper()
	n := 0
	if err := store.List(context.Background(), testLayout.TxnPrefix(), "", func(objstore.Attrs) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// hookStore runs a hook once, the first time a call matches.
type hookStore struct {
	objstore.Store
	mu        sync.Mutex
	afterGet  func(key string) // after a Get returned, before its caller sees it
	beforePut func(key string) // before a PutIfAbsent goes out
}

func (h *hookStore) take(f *func(string)) func(string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return *f
}

func (h *hookStore) Get(ctx context.Context, key string) (objstore.Object, error) {
	o, err := h.Store.Get(ctx, key)
	if f := h.take(&h.afterGet); f != nil {
		f(key)
	}
	return o, err
}

func (h *hookStore) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	if f := h.take(&h.beforePut); f != nil {
		f(key)
	}
	return h.Store.PutIfAbsent(ctx, key, body, meta)
}

// once wraps f so that it runs for the first key match accepts only.
func once(match func(string) bool, f func()) func(string) {
	var o sync.Once
	return func(key string) {
		if match(key) {
			o.Do(f)
		}
	}
}

// The seal rule (docs/protocol.md, "Shared transactions" 2): an append that
// lands between the commit's read of the record and its seal is in the
// committed batch, and one that comes after the seal, while the commit
// writes the WAL, is refused — never acknowledged and left out.
func TestSharedTxnSealOrdersAppendsAndCommit(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	hooked := &hookStore{Store: mem}
	committer := openShared(t, hooked, "p1", "env-commit")
	other := openShared(t, mem, "p1", "env-append")
	id, err := other.BeginTxn(ctx, "vt", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.AppendTxn(ctx, id, dataMsg("vt", "first")); err != nil {
		t.Fatal(err)
	}
	isRecord := func(k string) bool { return strings.Contains(k, "/txns/") }
	isSlot := func(k string) bool { return strings.Contains(k, "/wal/") }
	acked := []string{"first"}
	var racing, late error
	hooked.afterGet = once(isRecord, func() {
		// The commit has read the record, not sealed it yet.
		if racing = other.AppendTxn(ctx, id, dataMsg("vt", "racing")); racing == nil {
			acked = append(acked, "racing")
		}
	})
	hooked.beforePut = once(isSlot, func() {
		// The commit sealed the record and is writing the WAL.
		if late = other.AppendTxn(ctx, id, dataMsg("vt", "late")); late == nil {
			acked = append(acked, "late")
		}
	})
	acks, err := committer.CommitTxn(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if racing != nil {
		t.Fatalf("an append racing the seal (before it): %v, want it to land", racing)
	}
	got := txnPayloads(t, scanAll(t, mem, testLayout, "p1", sl.Earliest(), time.Second), id)
	if strings.Join(got, ",") != strings.Join(acked, ",") {
		t.Fatalf("I8: acked appends %q, committed %q: an acknowledged append was lost", acked, got)
	}
	if !errors.Is(late, sl.ErrTxnSealed) {
		t.Fatalf("an append after the seal: %v, want ErrTxnSealed", late)
	}
	if len(acks) != len(acked)+1 {
		t.Fatalf("commit acks %d, want %d", len(acks), len(acked)+1)
	}
	if err := other.RollbackTxn(ctx, id); !errors.Is(err, sl.ErrTxnNotFound) {
		t.Fatalf("rollback after the commit: %v, want ErrTxnNotFound", err)
	}
}

// A rollback of a sealed transaction is refused: the commit in progress
// decides.
func TestSharedTxnRollbackAfterSeal(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	hooked := &hookStore{Store: mem}
	committer := openShared(t, hooked, "p1", "env-commit")
	other := openShared(t, mem, "p1", "env-other")
	id, err := other.BeginTxn(ctx, "vt", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var rb error
	hooked.beforePut = once(func(k string) bool { return strings.Contains(k, "/wal/") }, func() {
		rb = other.RollbackTxn(ctx, id)
	})
	if _, err := committer.CommitTxn(ctx, id); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rb, sl.ErrTxnSealed) {
		t.Fatalf("rollback during the commit: %v, want ErrTxnSealed", rb)
	}
	if got := scanAll(t, mem, testLayout, "p1", sl.Earliest(), time.Second); len(got) != 0 {
		t.Fatalf("an empty transaction delivered %d messages", len(got))
	}
}

// Keepalive: a transaction untouched past it is refused at append and
// commit, and collected; one kept alive by appends is not. A sealed record
// whose commit never landed answers unknown until its settle time, then
// not found, and is collected.
func TestSharedTxnExpiryAndCollection(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	cfg := sharedCfg("p1", "a")
	cfg.Now = clock
	a, err := sl.OpenSharedWriter(ctx, cfg, store, newLeases(t, store))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Holder = "b"
	b, err := sl.OpenSharedWriter(ctx, cfg, store, newLeases(t, store))
	if err != nil {
		t.Fatal(err)
	}
	stale, err := a.BeginTxn(ctx, "vt", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	alive, err := a.BeginTxn(ctx, "vt", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	collected, err := a.BeginTxn(ctx, "vt", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		advance(1500 * time.Millisecond)
		if err := b.AppendTxn(ctx, alive, dataMsg("vt", "keep")); err != nil {
			t.Fatalf("append within the keepalive: %v", err)
		}
	}
	if err := b.AppendTxn(ctx, stale, dataMsg("vt", "x")); !errors.Is(err, sl.ErrTxnExpired) {
		t.Fatalf("append past the keepalive: %v, want ErrTxnExpired", err)
	}
	if _, err := a.CommitTxn(ctx, stale); !errors.Is(err, sl.ErrTxnNotFound) && !errors.Is(err, sl.ErrTxnExpired) {
		t.Fatalf("commit of an expired transaction: %v, want it refused", err)
	}
	st, err := sl.CollectTxns(ctx, store, testLayout, clock())
	if err != nil || st.Expired != 1 || st.Open != 1 || st.Deleted != 1 {
		t.Fatalf("collection: %+v %v, want the untouched one expired and deleted, the live one left", st, err)
	}
	if _, err := b.CommitTxn(ctx, collected); !errors.Is(err, sl.ErrTxnNotFound) {
		t.Fatalf("commit of a collected transaction: %v, want ErrTxnNotFound", err)
	}
	acks, err := b.CommitTxn(ctx, alive)
	if err != nil || len(acks) != 4 {
		t.Fatalf("commit of the live one: %v %+v", err, acks)
	}

	// A commit that sealed and then stalled past its seal window (a frozen
	// environment): a later retry writes nothing.
	sealed, err := a.BeginTxn(ctx, "vt", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AppendTxn(ctx, sealed, dataMsg("vt", "never")); err != nil {
		t.Fatal(err)
	}
	frozen := &hookStore{Store: store}
	cfg.Holder = "frozen"
	f, err := sl.OpenSharedWriter(ctx, cfg, frozen, newLeases(t, store))
	if err != nil {
		t.Fatal(err)
	}
	// Frozen after the seal, while catching up before its PUT.
	frozen.afterGet = once(func(k string) bool { return strings.Contains(k, "/checkpoints/") }, func() { advance(sl.TxnSealWindow) })
	if _, err := f.CommitTxn(ctx, sealed); err == nil {
		t.Fatal("a commit frozen past its seal window sent its batch")
	}
	if _, err := b.CommitTxn(ctx, sealed); !errors.Is(err, sl.ErrOutcomeUnknown) {
		t.Fatalf("retry inside the settle time: %v, want ErrOutcomeUnknown", err)
	}
	advance(time.Minute)
	if _, err := b.CommitTxn(ctx, sealed); !errors.Is(err, sl.ErrTxnNotFound) {
		t.Fatalf("retry after the settle time: %v, want ErrTxnNotFound", err)
	}
	for _, d := range scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second) {
		if d.TxnID == sealed {
			t.Fatalf("I8: a transaction answered not committed was delivered: %+v", d)
		}
	}
	if n := countTxnRecords(t, store); n != 0 {
		t.Fatalf("%d records left", n)
	}
}

// A transaction is written as one batch: appends past the batch limit are
// refused with ErrTooLarge, and what was acked still commits.
func TestSharedTxnTooLarge(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	cfg := sharedCfg("p1", "a")
	cfg.MaxBatchBytes = 4096
	sw, err := sl.OpenSharedWriter(ctx, cfg, store, newLeases(t, store))
	if err != nil {
		t.Fatal(err)
	}
	id, err := sw.BeginTxn(ctx, "vt", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	chunk := strings.Repeat("x", 1000)
	n := 0
	for ; n < 10; n++ {
		err = sw.AppendTxn(ctx, id, dataMsg("vt", chunk))
		if err != nil {
			break
		}
	}
	if !errors.Is(err, sl.ErrTooLarge) || n == 0 || n > 4 {
		t.Fatalf("after %d appends of 1000 bytes under a 4096-byte limit: %v, want ErrTooLarge", n, err)
	}
	acks, err := sw.CommitTxn(ctx, id)
	if err != nil || len(acks) != n+1 {
		t.Fatalf("commit: %v, %d acks, want %d", err, len(acks), n+1)
	}
}
