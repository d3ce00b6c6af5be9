package segmentlog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
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
// environment is a duplicate, from the record and, once maintenance
// collected that, from the idempotency window.
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
		st, err := sl.CollectTxns(ctx, store, testLayout, time.Now().Add(sl.TxnRetention+time.Minute))
		if err != nil || st.Deleted != 2 || countTxnRecords(t, store) != 0 {
			t.Fatalf("collection after the retention: %+v %v, want both records deleted", st, err)
		}
		again, err = envs[2].CommitTxn(ctx, id)
		if err != nil || len(again) != 1 || again[0].ID != acks[3].ID {
			t.Fatalf("I8: commit retried after its record was collected: %v %+v, want the commit %v from the window", err, again, acks[3].ID)
		}
		if _, err := envs[2].CommitTxn(ctx, id2); !errors.Is(err, sl.ErrTxnNotFound) {
			t.Fatalf("commit of a collected rolled-back transaction: %v, want ErrTxnNotFound", err)
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
	afterGet  func(key string) // after a Get (conditional or not) returned, before its caller sees it
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

func (h *hookStore) GetIfNoneMatch(ctx context.Context, key, etag string) (objstore.Object, error) {
	o, err := h.Store.GetIfNoneMatch(ctx, key, etag)
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
	if err != nil || st.Expired != 1 || st.Open != 2 || st.Deleted != 0 {
		t.Fatalf("collection: %+v %v, want the untouched one expired, the live and the ended ones left", st, err)
	}
	if err := b.AppendTxn(ctx, collected, dataMsg("vt", "x")); !errors.Is(err, sl.ErrTxnExpired) {
		t.Fatalf("append to a transaction the collection expired: %v, want ErrTxnExpired", err)
	}
	if _, err := b.CommitTxn(ctx, collected); !errors.Is(err, sl.ErrTxnExpired) {
		t.Fatalf("commit of a transaction the collection expired: %v, want ErrTxnExpired", err)
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
	if _, err := b.CommitTxn(ctx, sealed); !errors.Is(err, sl.ErrTxnNotFound) {
		t.Fatalf("second retry after the settle time: %v, want ErrTxnNotFound", err)
	}
	st, err = sl.CollectTxns(ctx, store, testLayout, clock().Add(sl.TxnRetention+time.Minute))
	if err != nil || st.Deleted != 4 || countTxnRecords(t, store) != 0 {
		t.Fatalf("collection after the retention: %+v %v, want all 4 records deleted", st, err)
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

// txnOutcome is what the calls of one transaction were answered.
type txnOutcome struct {
	id                       uint64
	acked, unknown, refused  []string
	committed                bool
	commitID                 sl.MessageID
	commitAnswers, notCommit int
}

// Transactions whose begin, appends and commits go to environments at
// random, through stores that fail calls, lose replies and apply writes
// late, with appends racing the commit and commits retried elsewhere:
// every acknowledged append of a committed transaction is delivered once,
// in its one batch; nothing of a transaction answered not committed, and
// nothing refused, is delivered (I8); a retried commit names the landed
// commit (I7).
func TestSharedTxnFaults(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	var faults []*objstore.Fault
	var envs []*sl.SharedWriter
	for i := range 3 {
		f := objstore.NewFault(mem, objstore.FaultConfig{Seed: uint64(i + 1), ErrorRate: 0.05, LostReplyRate: 0.1,
			DelayedApplyRate: 0.05, DelayedApply: 3 * time.Millisecond})
		f.SetEnabled(false)
		cfg := sharedCfg("p1", fmt.Sprintf("env-%d", i))
		sw, err := sl.OpenSharedWriter(ctx, cfg, f, newLeases(t, mem))
		if err != nil {
			t.Fatal(err)
		}
		f.SetEnabled(true)
		faults, envs = append(faults, f), append(envs, sw)
	}
	const txns, appends = 12, 6
	outcomes := make([]*txnOutcome, txns)
	var wg sync.WaitGroup
	for n := range txns {
		o := &txnOutcome{}
		outcomes[n] = o
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := func(k int) *sl.SharedWriter { return envs[(n+k)%len(envs)] }
			for k := 0; o.id == 0; k++ {
				id, err := env(k).BeginTxn(ctx, "vt", time.Minute)
				if err == nil {
					o.id = id
				} else if k > 20 {
					t.Errorf("begin: %v", err)
					return
				}
			}
			var mu sync.Mutex
			appendOne := func(k int, p string) {
				err := env(k).AppendTxn(ctx, o.id, dataMsg("vt", p))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					o.acked = append(o.acked, p)
				case errors.Is(err, sl.ErrTxnSealed), errors.Is(err, sl.ErrTxnNotFound):
					o.refused = append(o.refused, p)
				default:
					o.unknown = append(o.unknown, p) // transient, outcome unknown: not retried (appends carry no key)
				}
			}
			var inner sync.WaitGroup
			for a := range appends {
				inner.Add(1)
				go func() { defer inner.Done(); appendOne(a, fmt.Sprintf("t%d-a%d", n, a)) }()
			}
			inner.Wait()
			inner.Add(1)
			go func() { defer inner.Done(); appendOne(appends, fmt.Sprintf("t%d-racing", n)) }()
			for k := 0; ; k++ {
				acks, err := env(k+1).CommitTxn(ctx, o.id)
				if err == nil {
					c := acks[len(acks)-1]
					if o.committed && c.ID != o.commitID {
						t.Errorf("I7: txn %d: commit answered %v, earlier %v", o.id, c.ID, o.commitID)
					}
					o.committed, o.commitID = true, c.ID
					o.commitAnswers++
					if o.commitAnswers == 2 {
						break // one retry after the first success
					}
					continue
				}
				if errors.Is(err, sl.ErrTxnNotFound) || errors.Is(err, sl.ErrTxnExpired) {
					if o.committed {
						t.Errorf("I8: txn %d: a retried commit answered %v after a success", o.id, err)
					}
					o.notCommit++
					break
				}
				if k > 50 {
					t.Errorf("txn %d: commit never answered: %v", o.id, err)
					break
				}
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	for _, f := range faults {
		f.SetEnabled(false)
		f.Drain()
	}
	if t.Failed() {
		return
	}
	got := scanAll(t, mem, testLayout, "p1", sl.Earliest(), time.Second)
	committed, raced := 0, 0
	for _, o := range outcomes {
		delivered := txnPayloads(t, got, o.id)
		if !o.committed {
			if len(delivered) > 0 {
				t.Errorf("I8: txn %d answered not committed, delivered %q", o.id, delivered)
			}
			continue
		}
		committed++
		seen := map[string]int{}
		for _, p := range delivered {
			seen[p]++
		}
		for _, p := range o.acked {
			if seen[p] != 1 {
				t.Errorf("I8: txn %d: acked append %s delivered %d times (delivered %q)", o.id, p, seen[p], delivered)
			}
		}
		for _, p := range o.refused {
			if seen[p] != 0 {
				t.Errorf("I8: txn %d: refused append %s delivered", o.id, p)
			}
			raced++
		}
		for _, p := range o.unknown {
			if seen[p] > 1 {
				t.Errorf("I8: txn %d: append %s delivered %d times", o.id, p, seen[p])
			}
		}
		if len(delivered) != len(o.acked)+countIn(delivered, o.unknown) {
			t.Errorf("I8: txn %d delivered %q; acked %q, unknown %q", o.id, delivered, o.acked, o.unknown)
		}
	}
	var st objstore.FaultStats
	for _, f := range faults {
		s := f.Stats()
		st.LostReplies += s.LostReplies
		st.DelayedWrites += s.DelayedWrites
	}
	t.Logf("%d of %d transactions committed; %d appends refused after the seal; %d lost replies, %d delayed writes",
		committed, txns, raced, st.LostReplies, st.DelayedWrites)
	if committed == 0 || st.LostReplies == 0 || st.DelayedWrites == 0 {
		t.Fatalf("the run met none of: a commit, a lost reply, a delayed write")
	}
}

func countIn(delivered, set []string) int {
	n := 0
	for _, p := range delivered {
		for _, s := range set {
			if p == s {
				n++
			}
		}
	}
	return n
}

// An append whose reply was lost, and whose transaction was committed
// before it read the record again, learns from the committed record that
// it is in the commit: it is answered acked, not refused.
func TestSharedTxnAppendReplyLostAcrossCommit(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	var commitErr error
	var commit func()
	lossy := testkit.LoseFirstReply(mem, func(key string) bool { return strings.Contains(key, "/txns/") }, func() { commit() })
	appender := openShared(t, lossy, "p1", "env-append")
	committer := openShared(t, mem, "p1", "env-commit")
	id, err := committer.BeginTxn(ctx, "vt", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	commit = func() { _, commitErr = committer.CommitTxn(ctx, id) }
	if err := appender.AppendTxn(ctx, id, dataMsg("vt", "a")); err != nil {
		t.Fatalf("I8: an append in the commit answered %v", err)
	}
	if commitErr != nil {
		t.Fatal(commitErr)
	}
	if got := txnPayloads(t, scanAll(t, mem, testLayout, "p1", sl.Earliest(), time.Second), id); strings.Join(got, ",") != "a" {
		t.Fatalf("I8: committed %q, want the acked append", got)
	}
}
