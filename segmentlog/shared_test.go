package segmentlog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/objstoretest"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

func sharedCfg(pch, holder string) sl.WriterConfig {
	return sl.WriterConfig{PChannel: pch, Layout: testLayout, Holder: holder, Logger: quietLog,
		PutTimeout: 300 * time.Millisecond, GetTimeout: 300 * time.Millisecond, TimeTickInterval: -1}
}

func openShared(t testing.TB, store objstore.Store, pch, holder string) *sl.SharedWriter {
	t.Helper()
	sw, err := sl.OpenSharedWriter(context.Background(), sharedCfg(pch, holder), store, newLeases(t, store))
	if err != nil {
		t.Fatalf("open shared writer %s for %s: %v", pch, holder, err)
	}
	return sw
}

// Two processes' shared writers append to one pchannel at once: every ack
// is delivered once, at its ID, in ID order with rising timeticks, and the
// writers lost races to each other without a lease between them.
func TestSharedWritersAppendTogether(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	a := openShared(t, store, "p1", "a")
	b := openShared(t, store, "p1", "b")
	if !a.Stats().Opened || b.Stats().Opened || a.Term() != b.Term() {
		t.Fatalf("a opened %v term %d, b opened %v term %d: want a to open and b to adopt the same term",
			a.Stats().Opened, a.Term(), b.Stats().Opened, b.Term())
	}
	var mu sync.Mutex
	acked := map[string]sl.Ack{}
	var wg sync.WaitGroup
	for i, w := range []*sl.SharedWriter{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 40 {
				p := fmt.Sprintf("w%d-%d", i, n)
				acks, err := w.Append(ctx, dataMsg("v", p))
				if err != nil {
					t.Errorf("append %s: %v", p, err)
					return
				}
				mu.Lock()
				acked[p] = acks[0]
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	got := scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second)
	if len(got) != len(acked) {
		t.Fatalf("delivered %d messages, acked %d", len(got), len(acked))
	}
	for i, d := range got {
		ack, ok := acked[string(d.Payload)]
		if !ok || ack.ID != d.ID || ack.TimeTick != d.TimeTick {
			t.Fatalf("delivered %q at %v tick %d; acked %+v", d.Payload, d.ID, d.TimeTick, ack)
		}
		if i > 0 && d.TimeTick <= got[i-1].TimeTick {
			t.Fatalf("timetick %d at %v after %d", d.TimeTick, d.ID, got[i-1].TimeTick)
		}
	}
	if a.Stats().LostRaces+b.Stats().LostRaces == 0 && a.Stats().Folded+b.Stats().Folded == 0 {
		t.Fatalf("neither writer ever met the other's batches: %+v %+v", a.Stats(), b.Stats())
	}
}

// A retry of a keyed message through another process's shared writer is a
// duplicate: it gets the first copy's ID and tick, and nothing is written.
func TestSharedWriterRetryElsewhereIsDuplicate(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	a := openShared(t, store, "p1", "a")
	b := openShared(t, store, "p1", "b")
	key := sl.IdemKey{Producer: "prod", Epoch: 1, Seq: 7}
	m := sl.Message{Type: sl.TypeData, VChannel: "v", Key: key, Payload: []byte("x")}
	first, err := a.Append(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Append(ctx, m, dataMsg("v", "after"))
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].Duplicate || again[0].ID != first[0].ID || again[0].TimeTick != first[0].TimeTick {
		t.Fatalf("retry through b: %+v, first %+v", again[0], first[0])
	}
	if again[1].Duplicate || again[1].ID.Offset <= first[0].ID.Offset || again[1].TimeTick <= first[0].TimeTick {
		t.Fatalf("new message beside the retry: %+v", again[1])
	}
	if got := scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second); len(got) != 2 {
		t.Fatalf("delivered %d messages, want 2 (the retry is not written)", len(got))
	}
}

// A shared writer idle past FreshFor reads the tail and the checkpoint
// again before it writes (rule Shared 3); within FreshFor it does not. The
// checkpoint, unchanged since the writer last read it, comes back without
// its body (a conditional GET).
func TestSharedWriterProvesTailAfterPause(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	cp := sl.Checkpoint{Format: sl.CheckpointFormat, PChannel: "p1", Version: 1}
	for i := range 40 {
		cp.Retired = append(cp.Retired, sl.RetiredSegment{Key: fmt.Sprintf("segments/p1/v/%08d.arrow", i)})
	}
	putCheckpoint(t, mem, cp)
	var reads storeTally
	store := objstore.Observe(mem, func(r objstore.Request) {
		if r.Key == testLayout.Checkpoint("p1") {
			reads.observe(r)
		}
	})
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := sharedCfg("p1", "a")
	cfg.Now, cfg.FreshFor = clock, 5*time.Second
	sw, err := sl.OpenSharedWriter(ctx, cfg, store, newLeases(t, store))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Append(ctx, dataMsg("v", "1")); err != nil {
		t.Fatal(err)
	}
	probes := sw.Stats().Probes
	if _, err := sw.Append(ctx, dataMsg("v", "2")); err != nil {
		t.Fatal(err)
	}
	if got := sw.Stats().Probes; got != probes {
		t.Fatalf("append within FreshFor probed the tail again (%d → %d)", probes, got)
	}
	mu.Lock()
	now = now.Add(6 * time.Second)
	mu.Unlock()
	reads.take()
	if _, err := sw.Append(ctx, dataMsg("v", "3")); err != nil {
		t.Fatal(err)
	}
	if got := sw.Stats().Probes; got != probes+1 {
		t.Fatalf("append after a pause past FreshFor: %d probes, want %d", got, probes+1)
	}
	if n, b := reads.take(); n != 1 || b != 0 {
		t.Fatalf("append after a pause past FreshFor: %d checkpoint reads of %d bytes, want one read without a body", n, b)
	}
}

// An exclusive writer takes an open shared term over at once; the shared
// writers' next appends fail with ErrFenced and are never delivered; a new
// shared writer then takes the live exclusive lease over in turn.
func TestSharedTermAndExclusiveFenceEachOther(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	sw := openShared(t, store, "p1", "a")
	if _, err := sw.Append(ctx, dataMsg("v", "shared-1")); err != nil {
		t.Fatal(err)
	}
	ex := openWriter(t, store, "p1", nil) // no wait: a shared term is always takeable
	if ex.Term() <= sw.Term() {
		t.Fatalf("exclusive term %d after shared %d", ex.Term(), sw.Term())
	}
	if _, err := ex.Append(ctx, dataMsg("v", "exclusive-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Append(ctx, dataMsg("v", "zombie")); !errors.Is(err, sl.ErrFenced) {
		t.Fatalf("shared append after the exclusive takeover: %v, want ErrFenced", err)
	}
	sw2 := openShared(t, store, "p1", "b") // takes the live exclusive lease over
	if !sw2.Stats().Opened || sw2.Term() <= ex.Term() {
		t.Fatalf("second shared writer: opened %v term %d, exclusive term %d", sw2.Stats().Opened, sw2.Term(), ex.Term())
	}
	if _, err := sw2.Append(ctx, dataMsg("v", "shared-2")); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Append(ctx, dataMsg("v", "zombie")); !errors.Is(err, sl.ErrFenced) {
		t.Fatalf("exclusive append after the shared takeover: %v, want ErrFenced", err)
	}
	got := scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second)
	var payloads []string
	for _, d := range got {
		payloads = append(payloads, string(d.Payload))
	}
	if fmt.Sprint(payloads) != "[shared-1 exclusive-1 shared-2]" {
		t.Fatalf("delivered %v", payloads)
	}
}

// A forced takeover fences a live holder: its next append fails with
// ErrFenced, and the new term's ticks pass every tick its Sync promised.
func TestTakeoverOfLiveLease(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	// The old holder's clock runs a second ahead: its Sync promises a tick
	// above anything the new holder's clock reads, and above every tick it
	// wrote; only the lease's tt_max covers it.
	old := openWriter(t, store, "p1", func(c *sl.WriterConfig) { c.Now = func() time.Time { return time.Now().Add(time.Second) } })
	if _, err := old.Append(ctx, dataMsg("v", "old")); err != nil {
		t.Fatal(err)
	}
	promised, err := old.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sl.OpenWriter(ctx, sharedCfg("p1", "plain"), store, newLeases(t, store)); !errors.Is(err, coordinator.ErrLeaseHeld) {
		t.Fatalf("plain acquire of a live lease: %v, want ErrLeaseHeld", err)
	}
	nw := openWriter(t, store, "p1", func(c *sl.WriterConfig) { c.Takeover = true; c.Holder = "new" })
	acks, err := nw.Append(ctx, dataMsg("v", "new"))
	if err != nil {
		t.Fatal(err)
	}
	if acks[0].TimeTick <= promised {
		t.Fatalf("I4: first tick of the new term %d is not above the old holder's Sync %d", acks[0].TimeTick, promised)
	}
	if _, err := old.Append(ctx, dataMsg("v", "zombie")); !errors.Is(err, sl.ErrFenced) {
		t.Fatalf("old holder's append after the takeover: %v, want ErrFenced", err)
	}
	got := scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second)
	if len(got) != 2 || string(got[0].Payload) != "old" || string(got[1].Payload) != "new" {
		t.Fatalf("delivered %+v", got)
	}
	nw.Close(ctx)
}

// A holder whose lease was taken over can neither renew it nor promise a
// tick: its renew fails (the record names another term and nonce), so it
// stops with ErrFenced. Were the renew to succeed, the old holder — its
// clock 5 s ahead — would answer a Sync more than a TTL after the takeover
// with a tick above the new term's floor, and the new holder's next
// message would sort below that promise (I4).
func TestFencedHolderPromisesNothing(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	const ttl = 2 * time.Second
	ahead := func() time.Time { return time.Now().Add(5 * time.Second) }
	leasesA, err := coordinator.NewLeases(store, testLayout, coordinator.LeaseConfig{TTL: ttl, Margin: 500 * time.Millisecond},
		coordinator.WithClock(ahead), coordinator.WithRequestTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	cfg := sharedCfg("p1", "a")
	cfg.Now, cfg.RenewInterval = ahead, 100*time.Millisecond
	a, err := sl.OpenWriter(ctx, cfg, store, leasesA)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	if _, err := a.Append(ctx, dataMsg("v", "a")); err != nil {
		t.Fatal(err)
	}
	b := openWriter(t, store, "p1", func(c *sl.WriterConfig) { c.Takeover, c.Holder = true, "b" })
	defer b.Close(ctx)
	// a renews every 100 ms: it stops at its first renew, or (were the
	// renew to pass) keeps running past a TTL after the takeover.
	if !testkit.Within(t, ttl+500*time.Millisecond, func() bool { return a.Err() != nil }) {
		if promised, err := a.Sync(ctx); err == nil {
			acks, err := b.Append(ctx, dataMsg("v", "b"))
			if err != nil {
				t.Fatal(err)
			}
			if acks[0].TimeTick <= promised {
				t.Fatalf("I4: the taken-over holder's Sync promised %d after the takeover; the new holder then wrote tick %d", promised, acks[0].TimeTick)
			}
		}
	}
	if err := a.Err(); !errors.Is(err, sl.ErrFenced) {
		t.Fatalf("the taken-over holder did not stop fenced at its renew: %v", err)
	}
}

// TestSharedAdoptWaitsForTheWindow: Shared rule 1 — a writer adopts a
// shared term only once its window landed. Writer A takes the pchannel
// with a new shared term and stops (its WAL store frozen) before its
// fence window lands; writer B, opening meanwhile, must not adopt A's
// unopened term: it is told the pchannel is held (until A's deadline,
// after which it would take over with a term of its own) and never writes
// data inside A's window.
func TestSharedAdoptWaitsForTheWindow(t *testing.T) {
	ctx := context.Background()
	base := objstore.NewMemory()
	frozenA := &objstoretest.Process{Store: base}
	frozenA.Freeze() // A's lease service writes to base: its grant lands, its recovery and fence do not
	leasesA := newLeases(t, base)
	openedA := make(chan error, 1)
	go func() {
		_, err := sl.OpenSharedWriter(ctx, sharedCfg("adopt", "A"), frozenA, leasesA)
		openedA <- err
	}()
	defer func() {
		frozenA.Thaw(time.Second)
		<-openedA // whatever A's outcome, its goroutine ends
	}()
	testkit.Eventually(t, 10*time.Second, "A's shared term granted, not yet open", func() bool {
		l, err := leasesA.Describe(ctx, "adopt")
		return err == nil && l.Shared && l.OpenAt == 0 && !l.Released
	})

	sw, err := sl.OpenSharedWriter(ctx, sharedCfg("adopt", "B"), base, newLeases(t, base))
	if err == nil {
		acks, aerr := sw.Append(ctx, dataMsg("v", "from B"))
		if aerr == nil && acks[0].ID.Offset < sl.FenceWindow {
			t.Fatalf("I6: B adopted term %d before its window landed and wrote data at slot %d, inside the window [0, %d)",
				sw.Term(), acks[0].ID.Offset, sl.FenceWindow)
		}
		t.Fatalf("B opened the pchannel while A's shared term was being opened (append: %v, %v); want it held", acks, aerr)
	}
	if !errors.Is(err, coordinator.ErrLeaseHeld) {
		t.Fatalf("B's open while A's term is being opened: %v, want the lease held", err)
	}
}

// beforeFirstPut runs hook once, before the first PutIfAbsent it passes on:
// another writer's batch lands in the slot this one is about to take.
type beforeFirstPut struct {
	objstore.Store
	once sync.Once
	hook func()
}

func (s *beforeFirstPut) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	s.once.Do(s.hook)
	return s.Store.PutIfAbsent(ctx, key, body, meta)
}

// A shared writer that loses its slot folds the winner's batch from a HEAD
// (its fold summary) without downloading it (rule Shared 2): the winner's
// keys make the loser's copy of a key a duplicate, and the loser's new
// message lands at the next slot.
func TestSharedWriterFoldsLostSlotFromHead(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	a := openShared(t, mem, "p1", "a")
	key := sl.IdemKey{Producer: "prod", Epoch: 1, Seq: 3}
	keyed := sl.Message{Type: sl.TypeData, VChannel: "v", Key: key, Payload: []byte("k")}
	var first []sl.Ack
	racer := &beforeFirstPut{Store: mem, hook: func() {
		var err error
		if first, err = a.Append(ctx, keyed); err != nil {
			t.Errorf("a's append: %v", err)
		}
	}}
	var walGets, walHeads int
	var mu sync.Mutex
	store := objstore.Observe(racer, func(r objstore.Request) {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(r.Key, testLayout.WALPrefix("p1")) {
			switch r.Op {
			case objstore.OpGet, objstore.OpGetRange:
				walGets++
			case objstore.OpHead:
				walHeads++
			}
		}
	})
	b, err := sl.OpenSharedWriter(ctx, sharedCfg("p1", "b"), store, newLeases(t, mem))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	walGets, walHeads = 0, 0
	mu.Unlock()
	acks, err := b.Append(ctx, keyed, dataMsg("v", "b's own"))
	if err != nil {
		t.Fatal(err)
	}
	if first == nil {
		t.Fatal("the hook did not run: b never raced a")
	}
	if !acks[0].Duplicate || acks[0].ID != first[0].ID || acks[0].TimeTick != first[0].TimeTick {
		t.Fatalf("b's copy of a's key: %+v, a's ack %+v", acks[0], first[0])
	}
	if acks[1].ID.Offset != first[0].ID.Offset+1 || acks[1].TimeTick <= first[0].TimeTick {
		t.Fatalf("b's own message at %v tick %d, a's batch at %v tick %d", acks[1].ID, acks[1].TimeTick, first[0].ID, first[0].TimeTick)
	}
	if s := b.Stats(); s.LostRaces != 1 {
		t.Fatalf("b lost %d races, want 1", s.LostRaces)
	}
	mu.Lock()
	defer mu.Unlock()
	if walGets != 0 || walHeads == 0 {
		t.Fatalf("b read WAL slots with %d GETs and %d HEADs; want HEADs only", walGets, walHeads)
	}
	if got := scanAll(t, mem, testLayout, "p1", sl.Earliest(), time.Second); len(got) != 2 {
		t.Fatalf("delivered %d messages, want 2 (b's copy of the key is not written)", len(got))
	}
}
