package coordinator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	"github.com/cairnlog/cairn/segmentlog"
)

var (
	bcastRounds = flag.Int("bcast.rounds", 1, "rounds of the broadcast torture test")
	bcastSeed   = flag.Uint64("bcast.seed", 0, "seed of the first broadcast torture round (0: from the clock)")
)

// TestBroadcastTorture checks I9 — a broadcast reaches each target vchannel
// exactly once — and that broadcasts sharing a vchannel are in one order on
// every vchannel, while three coordinator instances run overlapping
// broadcasts at once through a store that fails requests and loses
// replies; runs are killed at random points, some freeze past their lock
// lease (before sending a copy, or after it landed) and thaw later, and
// pchannel writers are replaced mid-run (released, or abandoned to expire).
// At the end one clean instance resumes whatever is pending.
func TestBroadcastTorture(t *testing.T) {
	for _, kind := range []string{"memory", "minio"} {
		t.Run(kind, func(t *testing.T) {
			seed := *bcastSeed
			if seed == 0 {
				seed = uint64(time.Now().UnixNano())
			}
			for r := range *bcastRounds {
				var base objstore.Store = objstore.NewMemory()
				if kind == "minio" {
					base = testkit.MinIOStore(t, "coordinator")
				}
				s := seed + uint64(r)
				t.Logf("round %d: -bcast.seed=%d", r, s)
				runBroadcastTorture(t, base, s)
				if t.Failed() {
					return
				}
			}
		})
	}
}

// failoverWAL is a ControlWAL over one writer per pchannel that it replaces
// when it stopped, and that it sometimes kills: closes (releasing the lease)
// or abandons (the lease must expire first).
type failoverWAL struct {
	t      *testing.T
	store  objstore.Store
	leases *Leases
	rng    func() float64

	mu        sync.Mutex
	writers   map[string]*segmentlog.Writer
	cut       map[*segmentlog.Writer]*objstore.Fault // turned on, it cuts the writer off the store
	abandoned []*segmentlog.Writer
	opens     atomic.Int64
}

func (f *failoverWAL) writer(ctx context.Context, p string) (*segmentlog.Writer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.writers[p]
	if w != nil && w.Err() == nil {
		switch x := f.rng(); {
		case x < 0.03:
			w.Close(ctx)
			w = nil
		case x < 0.04:
			// Cut off from the store, like a crashed process: its lease
			// must expire before the next writer can open.
			f.cut[w].SetEnabled(true)
			f.abandoned = append(f.abandoned, w)
			w = nil
		}
	}
	if w == nil || w.Err() != nil {
		cut := objstore.NewFault(f.store, objstore.FaultConfig{ErrorRate: 1})
		cut.SetEnabled(false)
		nw, err := segmentlog.OpenWriter(ctx, segmentlog.WriterConfig{PChannel: p, Layout: testLayout,
			Holder: fmt.Sprintf("w%d", f.opens.Add(1)), Logger: quietLog, PutTimeout: 200 * time.Millisecond,
			GetTimeout: 200 * time.Millisecond, RenewInterval: 200 * time.Millisecond, TimeTickInterval: -1}, cut, f.leases)
		if err != nil {
			return nil, fmt.Errorf("open writer of %s: %w (%w)", p, objstore.ErrTransient, err)
		}
		f.writers[p] = nw
		f.cut[nw] = cut
		w = nw
	}
	return w, nil
}

func (f *failoverWAL) AppendControl(ctx context.Context, p string, msgs ...segmentlog.Message) ([]segmentlog.Ack, error) {
	w, err := f.writer(ctx, p)
	if err != nil {
		return nil, err
	}
	return w.AppendControl(ctx, msgs...)
}

func (f *failoverWAL) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.writers {
		w.Close(context.Background())
	}
	for _, w := range f.abandoned {
		w.Close(context.Background())
	}
}

// freezingWAL makes some calls of one coordinator instance freeze for
// longer than a lock lease: before the copy is sent (it reaches the writer
// after its deadline) or after it landed (the run learns its ack late).
type freezingWAL struct {
	inner  ControlWAL
	rng    func() float64
	freeze time.Duration
	frozen atomic.Int64
}

func (z *freezingWAL) AppendControl(ctx context.Context, p string, msgs ...segmentlog.Message) ([]segmentlog.Ack, error) {
	switch x := z.rng(); {
	case x < 0.05:
		z.frozen.Add(1)
		time.Sleep(z.freeze)
		return z.inner.AppendControl(context.WithoutCancel(ctx), p, msgs...)
	case x < 0.10:
		acks, err := z.inner.AppendControl(ctx, p, msgs...)
		z.frozen.Add(1)
		time.Sleep(z.freeze)
		return acks, err
	}
	return z.inner.AppendControl(ctx, p, msgs...)
}

func runBroadcastTorture(t *testing.T, base objstore.Store, seed uint64) {
	ctx := context.Background()
	var rmu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	float := func() float64 { rmu.Lock(); defer rmu.Unlock(); return rng.Float64() }
	intn := func(n int) int { rmu.Lock(); defer rmu.Unlock(); return rng.IntN(n) }

	pchannels := []string{"p0", "p1", "p2"}
	vchans := []string{"v0", "v1", "v2", "v3", "v4", "v5"}
	cfg := Config{Layout: testLayout, PChannels: pchannels, Logger: quietLog, RequestTimeout: 500 * time.Millisecond}
	wl, err := NewLeases(base, testLayout, LeaseConfig{TTL: 1500 * time.Millisecond, Margin: 400 * time.Millisecond},
		WithRequestTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	setup := &failoverWAL{t: t, store: base, leases: wl, rng: func() float64 { return 1 }, writers: map[string]*segmentlog.Writer{}, cut: map[*segmentlog.Writer]*objstore.Fault{}}
	reg, err := NewRegistry(cfg, base, wl)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vchans {
		if _, err := reg.Create(ctx, setup, v, pchannels[i%len(pchannels)]); err != nil {
			t.Fatal(err)
		}
	}
	setup.close()

	fault := objstore.NewFault(base, objstore.FaultConfig{Seed: seed, ErrorRate: 0.02, LostReplyRate: 0.03,
		DelayedApplyRate: 0.01, DelayedApply: 30 * time.Millisecond})
	wal := &failoverWAL{t: t, store: fault, leases: wl, rng: float, writers: map[string]*segmentlog.Writer{},
		cut: map[*segmentlog.Writer]*objstore.Fault{}}
	defer wal.close()
	bcfg := BroadcastConfig{Layout: testLayout, Logger: quietLog, LockTTL: time.Second, LockMargin: 250 * time.Millisecond,
		AttemptTTL: 400 * time.Millisecond, RequestTimeout: 300 * time.Millisecond}
	var instances []*Broadcaster
	var freezers []*freezingWAL
	for range 3 {
		r, err := NewRegistry(cfg, fault, wl)
		if err != nil {
			t.Fatal(err)
		}
		z := &freezingWAL{inner: wal, rng: float, freeze: 2 * bcfg.LockTTL}
		b, err := NewBroadcaster(bcfg, fault, r, z)
		if err != nil {
			t.Fatal(err)
		}
		instances, freezers = append(instances, b), append(freezers, z)
	}

	// Broadcasts over random overlapping vchannel sets, each driven by
	// two or three instances at once, with runs killed at random.
	const tasks = 16
	var reqs []BroadcastRequest
	for i := range tasks {
		n := 1 + intn(4)
		perm := rand.New(rand.NewPCG(seed, uint64(i))).Perm(len(vchans))
		var targets []string
		for _, j := range perm[:n] {
			targets = append(targets, vchans[j])
		}
		reqs = append(reqs, BroadcastRequest{ID: fmt.Sprintf("b%02d", i), VChannels: targets, Payload: fmt.Appendf(nil, "payload-%d", i)})
	}
	var wg sync.WaitGroup
	var kills, busy, finished atomic.Int64
	for _, req := range reqs {
		for k := range 2 + intn(2) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := instances[(k+intn(3))%3]
				rctx, cancel := context.WithTimeout(ctx, time.Duration(20+intn(800))*time.Millisecond)
				defer cancel()
				for {
					_, err := b.Broadcast(rctx, req)
					switch {
					case err == nil:
						finished.Add(1)
					case errors.Is(err, ErrBroadcastBusy) && rctx.Err() == nil:
						busy.Add(1)
						time.Sleep(10 * time.Millisecond)
						continue
					default:
						// killed, or the store gave up on a request: the
						// task stays pending
						kills.Add(1)
					}
					return
				}
			}()
		}
	}
	wg.Wait()
	fault.Drain()

	// A clean instance finishes whatever is pending (frozen runs' locks
	// expire first).
	clean, err := NewBroadcaster(bcfg, base, reg, wal)
	if err != nil {
		t.Fatal(err)
	}
	fault.SetEnabled(false)
	testkit.EventuallyNil(t, 60*time.Second, "every broadcast done", func() error {
		for _, req := range reqs {
			if _, err := clean.Submit(ctx, req); err != nil {
				t.Fatal(err) // a submission that never got persisted is persisted now
			}
		}
		if _, err := clean.Resume(ctx); err != nil {
			t.Logf("resume: %v", err)
		}
		all, err := clean.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pending := 0
		for _, b := range all {
			if b.State != BroadcastDone {
				pending++
			}
		}
		if pending > 0 {
			return fmt.Errorf("%d broadcasts still pending", pending)
		}
		return nil
	})
	wal.close()

	got := copies(t, base, pchannels...)
	for _, req := range reqs {
		task, err := clean.Describe(ctx, req.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkOnce(t, task, got[req.ID])
	}
	checkSameOrder(t, base, pchannels)
	var frozen int64
	for _, z := range freezers {
		frozen += z.frozen.Load()
	}
	st := fault.Stats()
	t.Logf("%d broadcasts: %d runs finished, %d found another run holding the task, %d killed; %d calls frozen past the lock lease; "+
		"%d writers opened; %d lost replies, %d delayed writes injected",
		tasks, finished.Load(), busy.Load(), kills.Load(), frozen, wal.opens.Load(), st.LostReplies, st.DelayedWrites)
}
