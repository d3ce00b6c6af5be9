package cas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/backoff"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/objstoretest"
)

// tally is the test record: a version every write raises by one, and the
// IDs of the updates applied, each at most once.
type tally struct {
	Version uint64   `json:"version"`
	Applied []string `json:"applied"`
}

var codec = Codec[tally]{
	Encode: func(t tally) ([]byte, error) { return json.Marshal(t) },
	Decode: func(b []byte) (tally, error) {
		var t tally
		err := json.Unmarshal(b, &t)
		return t, err
	},
}

const key = "meta/tally.json"

var policy = Policy{
	Timeout:     time.Second,
	MaxAttempts: 16,
	Backoff:     backoff.Policy{Min: 100 * time.Microsecond, Max: 2 * time.Millisecond},
}

// apply is an idempotent decision: add id once.
func apply(id string) Decide[tally] {
	return func(cur Record[tally]) (tally, error) {
		if slices.Contains(cur.Value.Applied, id) {
			return cur.Value, ErrUnchanged
		}
		return tally{Version: cur.Value.Version + 1, Applied: append(slices.Clone(cur.Value.Applied), id)}, nil
	}
}

// has recognises update id inside any later record.
func has(id string) Option[tally] {
	return Landed(func(cur Record[tally]) bool { return slices.Contains(cur.Value.Applied, id) })
}

// counting wraps apply and counts its calls.
func counting(id string, n *int) Decide[tally] {
	d := apply(id)
	return func(cur Record[tally]) (tally, error) {
		*n++
		return d(cur)
	}
}

// scripted forwards to a memory store and lets a test say what happens to
// each conditional write, in order (pass when the script is used up). It
// counts the requests that reach it.
type scripted struct {
	*objstore.Memory
	mu     sync.Mutex
	script []action
	gets   int
	writes int
}

// An action runs one write: do forwards it to the store.
type action func(ctx context.Context, do func(context.Context) (string, error)) (string, error)

var transient = fmt.Errorf("scripted: reply lost: %w", objstore.ErrTransient)

// pass forwards the write.
func pass(ctx context.Context, do func(context.Context) (string, error)) (string, error) {
	return do(ctx)
}

// lost applies the write and loses the reply.
func lost(ctx context.Context, do func(context.Context) (string, error)) (string, error) {
	do(ctx)
	return "", transient
}

// drop fails without reaching the store.
func drop(context.Context, func(context.Context) (string, error)) (string, error) {
	return "", transient
}

func newScripted(script ...action) *scripted {
	return &scripted{Memory: objstore.NewMemory(), script: script}
}

func (s *scripted) next() action {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if len(s.script) == 0 {
		return pass
	}
	a := s.script[0]
	s.script = s.script[1:]
	return a
}

func (s *scripted) Get(ctx context.Context, k string) (objstore.Object, error) {
	s.mu.Lock()
	s.gets++
	s.mu.Unlock()
	return s.Memory.Get(ctx, k)
}

func (s *scripted) PutIfAbsent(ctx context.Context, k string, body []byte, meta map[string]string) (string, error) {
	return s.next()(ctx, func(ctx context.Context) (string, error) { return s.Memory.PutIfAbsent(ctx, k, body, meta) })
}

func (s *scripted) PutIfMatch(ctx context.Context, k string, body []byte, etag string) (string, error) {
	return s.next()(ctx, func(ctx context.Context) (string, error) { return s.Memory.PutIfMatch(ctx, k, body, etag) })
}

func (s *scripted) counts() (gets, writes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets, s.writes
}

// foreign is another writer adding id, straight on the memory store.
func foreign(t *testing.T, m *objstore.Memory, id string) {
	t.Helper()
	if _, err := Update(context.Background(), m, key, codec, policy, apply(id)); err != nil {
		t.Fatalf("foreign update %s: %v", id, err)
	}
}

func stored(t *testing.T, m *objstore.Memory) tally {
	t.Helper()
	obj, err := m.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := codec.Decode(obj.Body)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCreateThenReplace(t *testing.T) {
	s := newScripted()
	for i, id := range []string{"a", "b"} {
		rec, err := Update(t.Context(), s, key, codec, policy, apply(id))
		if err != nil {
			t.Fatal(err)
		}
		obj, _ := s.Memory.Get(t.Context(), key)
		if rec.Value.Version != uint64(i+1) || !rec.Exists || rec.ETag != obj.ETag {
			t.Fatalf("update %s returned %+v; want version %d with the stored ETag %s", id, rec, i+1, obj.ETag)
		}
	}
	if gets, writes := s.counts(); gets != 2 || writes != 2 {
		t.Fatalf("%d GETs and %d writes, want 2 and 2 (one read and one write per update)", gets, writes)
	}
}

// TestLostReplyLanded: a write applied whose reply was lost is found by the
// next read and never sent again, nor decided again.
func TestLostReplyLanded(t *testing.T) {
	s := newScripted(lost)
	decided := 0
	rec, err := Update(t.Context(), s, key, codec, policy, counting("a", &decided))
	if err != nil {
		t.Fatal(err)
	}
	if _, writes := s.counts(); writes != 1 || decided != 1 || rec.Value.Version != 1 {
		t.Fatalf("%d writes, %d decisions, result %+v; want 1, 1 and version 1", writes, decided, rec.Value)
	}
}

// TestLostReplyNotApplied: a write that never reached the store is decided
// again from a fresh read and sent again.
func TestLostReplyNotApplied(t *testing.T) {
	s := newScripted(drop, drop)
	decided := 0
	rec, err := Update(t.Context(), s, key, codec, policy, counting("a", &decided))
	if err != nil {
		t.Fatal(err)
	}
	if _, writes := s.counts(); writes != 3 || decided != 3 {
		t.Fatalf("%d writes and %d decisions, want 3 and 3", writes, decided)
	}
	if got := stored(t, s.Memory); got.Version != 1 || !slices.Equal(got.Applied, []string{"a"}) || rec.Value.Version != 1 {
		t.Fatalf("stored %+v, returned %+v; want version 1 applying a once", got, rec.Value)
	}
}

// TestLateWriteLandsAfterDecidingAgain: the lost write lands while its
// replacement, conditional on the same version, is on its way; the
// replacement loses, and the next read recognises the first: applied once.
func TestLateWriteLandsAfterDecidingAgain(t *testing.T) {
	var held func(context.Context) (string, error)
	s := newScripted(
		func(_ context.Context, do func(context.Context) (string, error)) (string, error) {
			held = do // in flight
			return "", transient
		},
		func(ctx context.Context, do func(context.Context) (string, error)) (string, error) {
			if _, err := held(context.Background()); err != nil { // the late one lands first
				t.Errorf("late write: %v", err)
			}
			return do(ctx)
		},
	)
	foreign(t, s.Memory, "x") // the record exists: PutIfMatch both times
	decided := 0
	rec, err := Update(t.Context(), s, key, codec, policy, counting("a", &decided))
	if err != nil {
		t.Fatal(err)
	}
	if got := stored(t, s.Memory); got.Version != 2 || !slices.Equal(got.Applied, []string{"x", "a"}) || rec.ETag == "" {
		t.Fatalf("stored %+v, returned %+v; want version 2 applying a once, with its ETag", got, rec)
	}
	if decided != 2 {
		t.Fatalf("%d decisions, want 2", decided)
	}
}

// TestLostRaceDecidesAgain: another writer got in first; the update reads
// and decides on top of it.
func TestLostRaceDecidesAgain(t *testing.T) {
	var s *scripted
	s = newScripted(func(ctx context.Context, do func(context.Context) (string, error)) (string, error) {
		foreign(t, s.Memory, "x")
		return do(ctx)
	})
	decided := 0
	if _, err := Update(t.Context(), s, key, codec, policy, counting("a", &decided)); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, s.Memory); !slices.Equal(got.Applied, []string{"x", "a"}) || got.Version != 2 || decided != 2 {
		t.Fatalf("stored %+v after %d decisions; want x then a, version 2, 2 decisions", got, decided)
	}
}

// TestLandedThenOverwritten: our write landed, its reply was lost, and
// another writer replaced it before we read: Landed recognises it inside
// the newer record; without Landed the decision runs again (and, being
// idempotent, writes nothing).
func TestLandedThenOverwritten(t *testing.T) {
	for _, withLanded := range []bool{true, false} {
		t.Run(fmt.Sprintf("landed=%v", withLanded), func(t *testing.T) {
			var s *scripted
			s = newScripted(func(ctx context.Context, do func(context.Context) (string, error)) (string, error) {
				do(ctx)
				foreign(t, s.Memory, "x")
				return "", transient
			})
			var opts []Option[tally]
			if withLanded {
				opts = append(opts, has("a"))
			}
			decided := 0
			rec, err := Update(t.Context(), s, key, codec, policy, counting("a", &decided), opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := stored(t, s.Memory); !slices.Equal(got.Applied, []string{"a", "x"}) {
				t.Fatalf("stored %+v, want a then x", got)
			}
			switch {
			case withLanded && (rec.Value.Version != 1 || rec.ETag != "" || decided != 1):
				t.Fatalf("returned %+v after %d decisions; want our version 1, no ETag, one decision", rec, decided)
			case !withLanded && (rec.Value.Version != 2 || decided != 2):
				t.Fatalf("returned %+v after %d decisions; want the record as stored (version 2), two decisions", rec, decided)
			}
		})
	}
}

// TestOnUnknownLandedThenDeleted: our write landed, its reply was lost,
// and the record was deleted before we read. No read can tell (the
// decision on no record refuses, and Update reports just that), so
// OnUnknown is the caller's only sign that its change may have been made;
// a write that lost a race outright does not trigger it.
func TestOnUnknownLandedThenDeleted(t *testing.T) {
	errGone := errors.New("record gone")
	onlyIfThere := func(cur Record[tally]) (tally, error) {
		if !cur.Exists {
			return tally{}, errGone
		}
		return apply("a")(cur)
	}
	var s *scripted
	s = newScripted(func(ctx context.Context, do func(context.Context) (string, error)) (string, error) {
		do(ctx)
		if err := s.Memory.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		return "", transient
	})
	foreign(t, s.Memory, "x")
	unknown := 0
	_, err := Update(t.Context(), s, key, codec, policy, onlyIfThere, OnUnknown[tally](func() { unknown++ }))
	if !errors.Is(err, errGone) || errors.Is(err, ErrOutcomeUnknown) || unknown != 1 {
		t.Fatalf("update: %v after %d unknown outcomes; want the decision's refusal alone, and one unknown outcome reported", err, unknown)
	}

	var raced *scripted
	raced = newScripted(func(ctx context.Context, do func(context.Context) (string, error)) (string, error) {
		foreign(t, raced.Memory, "y")
		return do(ctx)
	})
	foreign(t, raced.Memory, "x")
	unknown = 0
	if _, err := Update(t.Context(), raced, key, codec, policy, onlyIfThere, OnUnknown[tally](func() { unknown++ })); err != nil || unknown != 0 {
		t.Fatalf("update after a lost race: %v, %d unknown outcomes; want success and none", err, unknown)
	}
}

// TestUnchangedWritesNothing: ErrUnchanged ends the update with decide's
// value and the ETag read.
func TestUnchangedWritesNothing(t *testing.T) {
	s := newScripted()
	foreign(t, s.Memory, "a")
	rec, err := Update(t.Context(), s, key, codec, policy, apply("a"))
	obj, _ := s.Memory.Get(t.Context(), key)
	if _, writes := s.counts(); err != nil || writes != 0 || rec.ETag != obj.ETag || rec.Value.Version != 1 {
		t.Fatalf("update: %+v, %v after %d writes; want the stored version 1, no write", rec, err, writes)
	}
}

// TestFrom: the first round decides on the record given, without a read; a
// stale one costs a lost race.
func TestFrom(t *testing.T) {
	s := newScripted()
	first, err := Update(t.Context(), s, key, codec, policy, apply("a"))
	if err != nil {
		t.Fatal(err)
	}
	g0, _ := s.counts()
	if _, err := Update(t.Context(), s, key, codec, policy, apply("b"), From(first)); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.counts(); g != g0 {
		t.Fatalf("%d GETs with a fresh From, want none", g-g0)
	}
	if _, err := Update(t.Context(), s, key, codec, policy, apply("c"), From(first)); err != nil { // stale
		t.Fatal(err)
	}
	if got := stored(t, s.Memory); !slices.Equal(got.Applied, []string{"a", "b", "c"}) || got.Version != 3 {
		t.Fatalf("stored %+v, want a, b, c at version 3", got)
	}
}

// TestEndedContext: once ctx has ended nothing is written, and a write of
// unknown outcome is settled by a read detached from ctx.
func TestEndedContext(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		s := newScripted()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := Update(ctx, s, key, codec, policy, apply("a"))
		if _, writes := s.counts(); !errors.Is(err, context.Canceled) || writes != 0 {
			t.Fatalf("update on an ended context: %v after %d writes; want context.Canceled, no write", err, writes)
		}
	})
	cancelling := func(cancel func(), landed bool) action {
		return func(ctx context.Context, do func(context.Context) (string, error)) (string, error) {
			if landed {
				do(ctx)
			}
			cancel()
			return "", context.Canceled
		}
	}
	t.Run("landed", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		s := newScripted()
		s.script = []action{cancelling(cancel, true)}
		rec, err := Update(ctx, s, key, codec, policy, apply("a"))
		if err != nil || rec.Value.Version != 1 {
			t.Fatalf("update: %+v, %v; want the landed write reported as success", rec, err)
		}
	})
	t.Run("may still land", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		s := newScripted()
		s.script = []action{cancelling(cancel, false)}
		_, err := Update(ctx, s, key, codec, policy, apply("a"))
		if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
			t.Fatalf("update: %v; want ErrOutcomeUnknown and context.Canceled", err)
		}
	})
	t.Run("can no longer land", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		s := newScripted()
		s.script = []action{func(ctx context.Context, do func(context.Context) (string, error)) (string, error) {
			cancel()
			foreign(t, s.Memory, "x") // the lost PutIfAbsent can never land now
			return "", context.Canceled
		}}
		_, err := Update(ctx, s, key, codec, policy, apply("a"))
		if errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
			t.Fatalf("update: %v; want context.Canceled alone", err)
		}
	})
}

// TestGivesUp: failing writes end in an error that says their outcome is
// unknown; failing reads in one that does not.
func TestGivesUp(t *testing.T) {
	mem := objstore.NewMemory()
	foreign(t, mem, "x")
	p := policy
	p.MaxAttempts = 4
	writes := objstore.NewFault(mem, objstore.FaultConfig{ErrorRates: map[objstore.Op]float64{objstore.OpPutIfMatch: 1}})
	_, err := Update(t.Context(), writes, key, codec, p, apply("a"))
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, objstore.ErrTransient) {
		t.Fatalf("failing writes: %v; want ErrOutcomeUnknown and ErrTransient", err)
	}
	if n := writes.Stats().Calls[objstore.OpPutIfMatch]; n != 4 {
		t.Fatalf("%d writes, want 4 (MaxAttempts)", n)
	}
	reads := objstore.NewFault(mem, objstore.FaultConfig{ErrorRates: map[objstore.Op]float64{objstore.OpGet: 1}})
	_, err = Update(t.Context(), reads, key, codec, p, apply("a"))
	if errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, objstore.ErrTransient) {
		t.Fatalf("failing reads: %v; want ErrTransient alone", err)
	}
	if got := stored(t, mem); got.Version != 1 {
		t.Fatalf("stored %+v, want the record untouched", got)
	}
}

// refusal is an error of the caller's decision.
type refusal struct{ why string }

func (r *refusal) Error() string { return r.why }

// TestDecideError: decide's error comes back as it is; after a write that
// may still land, with ErrOutcomeUnknown beside it.
func TestDecideError(t *testing.T) {
	s := newScripted()
	_, err := Update(t.Context(), s, key, codec, policy, func(Record[tally]) (tally, error) { return tally{}, &refusal{"no"} })
	var r *refusal
	if !errors.As(err, &r) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("update: %v; want the refusal alone", err)
	}
	s = newScripted(drop)
	n := 0
	_, err = Update(t.Context(), s, key, codec, policy, func(cur Record[tally]) (tally, error) {
		if n++; n > 1 {
			return tally{}, &refusal{"changed my mind"}
		}
		return apply("a")(cur)
	})
	if !errors.As(err, &r) || !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("update: %v; want the refusal with ErrOutcomeUnknown", err)
	}
}

// TestFaults: many updaters on one record through a store that fails
// requests, loses replies and applies writes late, some with contexts that
// end early. What Update reports must be true: a success is in the record,
// exactly once; a failure without ErrOutcomeUnknown never shows up, not
// even after every late write has landed; and the version rose by exactly
// one per applied update.
func TestFaults(t *testing.T) {
	lateLanded := int64(0)
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			mem := objstore.NewMemory()
			fault := objstore.NewFault(mem, objstore.FaultConfig{
				Seed: seed, ErrorRate: 0.15, LostReplyRate: 0.2, DelayedApplyRate: 0.2,
				DelayedApply: time.Millisecond, Jitter: 200 * time.Microsecond,
			})
			p := policy
			p.MaxAttempts = 8
			const workers, each = 6, 25
			type outcome struct {
				id  string
				err error
			}
			results := make(chan outcome, workers*each)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						id := fmt.Sprintf("w%d-%d", w, i)
						ctx, cancel := context.WithCancel(t.Context())
						if i%4 == 3 {
							ctx, cancel = context.WithTimeout(t.Context(), time.Duration(i%7)*100*time.Microsecond)
						}
						_, err := Update(ctx, fault, key, codec, p, apply(id), has(id))
						cancel()
						results <- outcome{id, err}
					}
				})
			}
			wg.Wait()
			close(results)
			fault.Drain()
			got := stored(t, mem)
			count := map[string]int{}
			for _, id := range got.Applied {
				count[id]++
			}
			var ok, unknown, failed int
			for r := range results {
				switch {
				case r.err == nil:
					ok++
					if count[r.id] != 1 {
						t.Errorf("%s reported applied, found %d times", r.id, count[r.id])
					}
				case errors.Is(r.err, ErrOutcomeUnknown):
					unknown++
				default:
					failed++
					if count[r.id] != 0 {
						t.Errorf("%s reported failed (%v), found %d times", r.id, r.err, count[r.id])
					}
				}
			}
			for id, n := range count {
				if n != 1 {
					t.Errorf("%s applied %d times", id, n)
				}
			}
			if got.Version != uint64(len(got.Applied)) {
				t.Errorf("version %d after %d applied updates: a write was lost or doubled", got.Version, len(got.Applied))
			}
			st := fault.Stats()
			t.Logf("seed %d: %d applied, %d unknown, %d failed; %d lost replies, %d late writes (%d landed), %d injected failures",
				seed, ok, unknown, failed, st.LostReplies, st.DelayedWrites, st.DelayedApplied, st.Injected[objstore.OpGet]+st.Injected[objstore.OpPutIfMatch]+st.Injected[objstore.OpPutIfAbsent])
			if ok == 0 || st.LostReplies == 0 || st.DelayedWrites == 0 {
				t.Fatalf("the faults were not exercised: %d successes, %d lost replies, %d late writes", ok, st.LostReplies, st.DelayedWrites)
			}
			lateLanded += st.DelayedApplied
		})
	}
	if lateLanded == 0 {
		t.Fatal("no late write landed in any run: the settling of late writes was not exercised")
	}
}

// TestFrozenAfterRead: an updater's process freezes with a read answered
// but unseen (objstoretest.Process), others update the record meanwhile,
// and it thaws to decide on that stale read: its write, conditional on an
// ETag the record has left, loses, and it decides again on what it reads
// then. Nothing is lost or applied twice.
func TestFrozenAfterRead(t *testing.T) {
	mem := objstore.NewMemory()
	foreign(t, mem, "x")
	proc := &objstoretest.Process{Store: mem}
	froze := proc.FreezeAfterReply(func(k string) bool { return k == key })
	done := make(chan error, 1)
	decided := 0
	go func() {
		_, err := Update(context.Background(), proc, key, codec, policy, counting("a", &decided))
		done <- err
	}()
	<-froze
	foreign(t, mem, "y")
	foreign(t, mem, "z")
	proc.Thaw(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := stored(t, mem); !slices.Equal(got.Applied, []string{"x", "y", "z", "a"}) || got.Version != 4 || decided != 2 {
		t.Fatalf("stored %+v after %d decisions; want x, y, z, a at version 4 after 2 decisions (one stale)", got, decided)
	}
}
