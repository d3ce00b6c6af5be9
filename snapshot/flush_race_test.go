package snapshot_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// dyingStore fails every checkpoint write without applying it, as when the
// flusher's process dies between writing its segments and the CAS.
type dyingStore struct{ objstore.Store }

var errDied = errors.New("test: process died before the checkpoint CAS")

func (d dyingStore) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	if strings.Contains(key, "/meta/checkpoints/") {
		return "", errDied
	}
	return d.Store.PutIfAbsent(ctx, key, body, meta)
}

func (d dyingStore) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	if strings.Contains(key, "/meta/checkpoints/") {
		return "", errDied
	}
	return d.Store.PutIfMatch(ctx, key, body, etag)
}

func listKeys(t testing.TB, store objstore.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := store.List(context.Background(), prefix, "", func(a objstore.Attrs) error {
		keys = append(keys, a.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestFlushCrashBeforeCAS: segments written, checkpoint never moved. The
// next flush covers the same range again: no loss, no duplicate, and the
// first flush's files are orphans that no manifest names.
func TestFlushCrashBeforeCAS(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		const pch = "crash"
		w := openWriter(t, store, pch, nil)
		defer w.Close(ctx)
		acks := appendN(t, w, "p", 0, 30, "va", "vb")
		before := scanAll(t, store, pch, sl.Earliest(), nil, nil)

		dead := newFlusher(t, dyingStore{store}, pch, nil)
		if _, err := dead.FlushNow(ctx); !errors.Is(err, errDied) {
			t.Fatalf("flush through a dying store: %v, want the crash", err)
		}
		orphans := listKeys(t, store, snapshot.SegmentsPrefix(testLayout))
		if len(orphans) != 2 {
			t.Fatalf("segment files after the crash: %v, want 2", orphans)
		}
		if cp, etag, _ := sl.ReadCheckpoint(ctx, store, testLayout, pch); etag != "" || cp.C != 0 {
			t.Fatalf("checkpoint moved despite the crash: %+v", cp)
		}

		acks = append(acks, appendN(t, w, "p", 30, 10, "va", "vc")...)
		rounds, err := newFlusher(t, store, pch, nil).FlushNow(ctx)
		if err != nil || len(rounds) != 1 {
			t.Fatalf("flush after the crash: %d rounds, %v", len(rounds), err)
		}
		cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range cp.Segments {
			if slices.Contains(orphans, ref.Key) {
				t.Errorf("manifest names the crashed flush's file %s", ref.Key)
			}
		}
		got := scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil)
		checkNoGapNoDup(t, got, acks)
		sameDeliveries(t, "first 30 after crash and re-flush", got[:min(30, len(got))], before)
	})
}

// TestFlushUnknownOutcomes: half the flusher's writes lose their reply, or
// land after the flusher gave up on them. The flush still commits each
// range once, learning its CAS outcome by reading the record back.
func TestFlushUnknownOutcomes(t *testing.T) {
	for _, mode := range []string{"lost-reply", "delayed-apply"} {
		t.Run(mode, func(t *testing.T) {
			stores(t, func(t *testing.T, store objstore.Store) {
				ctx := context.Background()
				pch := "unknown-" + mode
				w := openWriter(t, store, pch, nil)
				defer w.Close(ctx)
				cfg := objstore.FaultConfig{Seed: 7, LostReplyRate: 0.5}
				if mode == "delayed-apply" {
					cfg = objstore.FaultConfig{Seed: 7, DelayedApplyRate: 0.5, DelayedApply: 20 * time.Millisecond}
				}
				fault := objstore.NewFault(store, cfg)
				cas := &casCounter{Store: fault}
				f := newFlusher(t, cas, pch, func(c *snapshot.FlushConfig) { c.MaxSlots = 12 })
				var acks []sl.Ack
				var rounds []snapshot.Round
				for i := 0; i < 3; i++ {
					acks = append(acks, appendN(t, w, "p", i*20, 20, "va", "vb", "vc")...)
					rs, err := f.FlushNow(ctx)
					if err != nil {
						t.Fatalf("flush %d: %v", i, err)
					}
					rounds = append(rounds, rs...)
				}
				fault.Drain()
				st := fault.Stats()
				if cas.unknown.Load() == 0 {
					t.Errorf("no checkpoint CAS met an unknown outcome (faults %+v): the test proves nothing", st)
				}
				t.Logf("%d rounds; %d checkpoint CAS calls, %d with an unknown outcome; %d lost replies, %d delayed writes in all",
					len(rounds), cas.calls.Load(), cas.unknown.Load(), st.LostReplies, st.DelayedWrites)
				cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
				if err != nil {
					t.Fatal(err)
				}
				checkChain(t, rounds, cp)
				checkNoGapNoDup(t, scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil), acks)
			})
		})
	}
}

// casCounter counts checkpoint writes and those whose outcome the caller
// did not learn.
type casCounter struct {
	objstore.Store
	calls, unknown atomic.Int64
}

func (c *casCounter) count(key string, err error) {
	if strings.Contains(key, "/meta/checkpoints/") {
		c.calls.Add(1)
		if objstore.IsRetryable(err) {
			c.unknown.Add(1)
		}
	}
}

func (c *casCounter) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	etag, err := c.Store.PutIfAbsent(ctx, key, body, meta)
	c.count(key, err)
	return etag, err
}

func (c *casCounter) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	etag, err := c.Store.PutIfMatch(ctx, key, body, etag)
	c.count(key, err)
	return etag, err
}

// checkChain checks that committed rounds, in version order, are exactly
// the checkpoint's history: each starts where the previous ended, versions
// 1, 2, 3, ..., and the manifest is their segments in that order.
func checkChain(t testing.TB, rounds []snapshot.Round, cp sl.Checkpoint) {
	t.Helper()
	checkRounds(t, rounds, cp, false)
}

// checkRounds is checkChain; with gaps allowed, a version may be missing
// from the reports (a flusher stopped before it could learn that its CAS
// landed), but the reported rounds must still fit one history: no version
// twice, a round right after another starts where it ended, C never goes
// back, and the manifest holds every reported segment in version order.
func checkRounds(t testing.TB, rounds []snapshot.Round, cp sl.Checkpoint, gaps bool) {
	t.Helper()
	slices.SortFunc(rounds, func(a, b snapshot.Round) int { return int(a.Version) - int(b.Version) })
	var manifest []sl.SegmentRef
	prev, prevVersion := uint64(0), uint64(0)
	for i, r := range rounds {
		switch {
		case r.Version == prevVersion:
			t.Errorf("I6: round %d: version %d committed twice", i, r.Version)
		case r.Version != prevVersion+1 && !gaps:
			t.Errorf("I6: round %d has version %d after %d: a version skipped", i, r.Version, prevVersion)
		}
		if r.To <= r.From || r.From < prev || r.Version == prevVersion+1 && r.From != prev {
			t.Errorf("I6: round %d (version %d) goes %d→%d after %d: the checkpoint skipped, repeated or went back", i, r.Version, r.From, r.To, prev)
		}
		prev, prevVersion = r.To, r.Version
		manifest = append(manifest, r.Segments...)
	}
	if !gaps && (cp.C != prev || cp.Version != uint64(len(rounds))) {
		t.Errorf("I6: checkpoint c=%d version %d, the rounds end at %d after %d versions", cp.C, cp.Version, prev, len(rounds))
	}
	if gaps && (cp.C < prev || cp.Version < prevVersion) {
		t.Errorf("I6: checkpoint c=%d version %d, behind the reported rounds (c %d, version %d)", cp.C, cp.Version, prev, prevVersion)
	}
	got := cp.Segments
	for _, ref := range manifest {
		i := slices.Index(got, ref)
		if i < 0 {
			t.Errorf("I1: manifest lacks %s of a committed round (or holds it out of order)", ref.Key)
			return
		}
		if !gaps && i != 0 {
			t.Errorf("manifest holds %d segments no reported round wrote before %s", i, ref.Key)
		}
		got = got[i+1:]
	}
	if !gaps && len(got) > 0 {
		t.Errorf("manifest holds %d segments no reported round wrote", len(got))
	}
}

// TestConcurrentFlushers: a writer appends while two Run loops and a
// FlushNow loop flush the same pchannel. The committed rounds form one
// chain; every acked message is read back once, from segments then the
// WAL.
func TestConcurrentFlushers(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const pch = "race"
		w := openWriter(t, store, pch, func(c *sl.WriterConfig) { c.TimeTickInterval = 50 * time.Millisecond })
		var mu sync.Mutex
		var rounds []snapshot.Round
		onRound := func(r snapshot.Round) {
			mu.Lock()
			rounds = append(rounds, r)
			mu.Unlock()
		}
		var fwg sync.WaitGroup
		for i := 0; i < 2; i++ {
			f := newFlusher(t, store, pch, func(c *snapshot.FlushConfig) {
				c.MinBytes, c.Interval, c.MaxSlots, c.OnRound = 2<<10, 10*time.Millisecond, 9, onRound
			})
			fwg.Add(1)
			go func() { defer fwg.Done(); f.Run(ctx) }()
		}
		now := newFlusher(t, store, pch, func(c *snapshot.FlushConfig) { c.MaxSlots, c.OnRound = 5, onRound })
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			for ctx.Err() == nil {
				if _, err := now.FlushNow(ctx); err != nil && ctx.Err() == nil {
					t.Errorf("flush now: %v", err)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()

		var acks []sl.Ack
		var awg sync.WaitGroup
		var amu sync.Mutex
		for p := 0; p < 3; p++ {
			awg.Add(1)
			go func() {
				defer awg.Done()
				a := appendN(t, w, fmt.Sprintf("prod%d", p), 0, 60, "va", "vb", "vc", "vd")
				amu.Lock()
				acks = append(acks, a...)
				amu.Unlock()
			}()
		}
		awg.Wait()
		// A timetick persisted after the appends (a batch past the last
		// ack: counting timetick batches from here would miss one written
		// before this line on a slow machine), and flushed with them.
		var lastData uint64
		for _, a := range acks {
			lastData = max(lastData, a.ID.Offset)
		}
		testkit.Eventually(t, 20*time.Second, "a timetick after the appends, flushed", func() bool {
			frontier := w.Stats().Frontier
			if frontier <= lastData+1 {
				return false
			}
			cp, _, err := sl.ReadCheckpoint(ctx, store, testLayout, pch)
			return err == nil && cp.C >= frontier
		})
		cancel()
		fwg.Wait()
		if err := w.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		last, err := newFlusher(t, store, pch, func(c *snapshot.FlushConfig) { c.OnRound = onRound }).FlushNow(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		cp, _, err := sl.ReadCheckpoint(context.Background(), store, testLayout, pch)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d rounds committed by 4 flushers (%d by the last), checkpoint at %d", len(rounds), len(last), cp.C)
		checkChain(t, rounds, cp)
		slices.SortFunc(acks, func(a, b sl.Ack) int {
			if a.ID.Less(b.ID) {
				return -1
			}
			return 1
		})
		got := scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil)
		checkNoGapNoDup(t, got, acks)
		if len(got) != len(acks) {
			t.Errorf("%d delivered, %d acked", len(got), len(acks))
		}
	})
}
