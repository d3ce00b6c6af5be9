package coordinator

import (
	"context"
	"encoding/json"
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
	"github.com/cairnlog/cairn/segmentlog"
)

// broadcastFixture is a registry fixture with vchannels and broadcasters.
type broadcastFixture struct {
	*registryFixture
	vchans []string
}

func newBroadcastFixture(t *testing.T, pchannels []string, vchannels int) *broadcastFixture {
	t.Helper()
	return newBroadcastFixtureOn(t, objstore.NewMemory(), pchannels, vchannels)
}

func newBroadcastFixtureOn(t *testing.T, store objstore.Store, pchannels []string, vchannels int) *broadcastFixture {
	t.Helper()
	f := &broadcastFixture{registryFixture: newRegistryFixtureOn(t, store, pchannels...)}
	for i := range vchannels {
		v := fmt.Sprintf("v%d", i)
		if _, err := f.reg.Create(context.Background(), f.wal, v, ""); err != nil {
			t.Fatal(err)
		}
		f.vchans = append(f.vchans, v)
	}
	return f
}

// broadcaster returns a new instance on the fixture's store, with the real
// clock (the writers judge copy deadlines by it).
func (f *broadcastFixture) broadcaster(t *testing.T, wal ControlWAL, mod func(*BroadcastConfig)) *Broadcaster {
	t.Helper()
	cfg := BroadcastConfig{Layout: testLayout, Logger: quietLog, SyncPoll: 10 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	if wal == nil {
		wal = f.wal
	}
	b, err := NewBroadcaster(cfg, f.store, f.reg, wal)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// copies scans every pchannel and returns the broadcast copies delivered,
// by broadcast ID and vchannel (several if delivered more than once).
func copies(t *testing.T, store objstore.Store, pchannels ...string) map[string]map[string][]segmentlog.Delivery {
	t.Helper()
	ctx := context.Background()
	out := map[string]map[string][]segmentlog.Delivery{}
	for _, p := range pchannels {
		for _, d := range testkit.Scan(t, ctx, store, segmentlog.ScannerConfig{PChannel: p, Layout: testLayout,
			Types: []segmentlog.MessageType{segmentlog.TypeBroadcast}}) {
			if out[d.BroadcastID] == nil {
				out[d.BroadcastID] = map[string][]segmentlog.Delivery{}
			}
			out[d.BroadcastID][d.VChannel] = append(out[d.BroadcastID][d.VChannel], d)
		}
	}
	return out
}

// checkOnce checks I9 for task t: one copy per target vchannel, at the
// position the task recorded, with the task's payload.
func checkOnce(t *testing.T, task Broadcast, got map[string][]segmentlog.Delivery) {
	t.Helper()
	if len(got) != len(task.Targets) {
		t.Errorf("broadcast %s reached %d vchannels, want %d", task.ID, len(got), len(task.Targets))
	}
	for _, tg := range task.Targets {
		ds := got[tg.VChannel]
		switch {
		case len(ds) != 1:
			t.Errorf("broadcast %s: %d copies on %s, want 1", task.ID, len(ds), tg.VChannel)
		case tg.Appended == nil || ds[0].ID != tg.Appended.ID:
			t.Errorf("broadcast %s on %s: delivered at %v, task says %+v", task.ID, tg.VChannel, ds[0].ID, tg.Appended)
		case string(ds[0].Payload) != string(task.Payload):
			t.Errorf("broadcast %s on %s: payload %q", task.ID, tg.VChannel, ds[0].Payload)
		}
	}
}

func TestBroadcastFast(t *testing.T) {
	ctx := context.Background()
	f := newBroadcastFixture(t, []string{"p0", "p1"}, 4)
	b := f.broadcaster(t, nil, nil)
	req := BroadcastRequest{ID: "ddl-1", VChannels: []string{"v3", "v0", "v1"}, Payload: []byte("create index"),
		Properties: map[string]string{"kind": "ddl"}}
	task, err := b.Broadcast(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if task.State != BroadcastDone || task.FinishedAt.IsZero() || len(task.Targets) != 3 || task.Targets[0].VChannel != "v0" {
		t.Fatalf("task %+v", task)
	}
	got := copies(t, f.store, "p0", "p1")
	checkOnce(t, task, got["ddl-1"])
	if d := got["ddl-1"]["v1"][0]; d.Properties["kind"] != "ddl" || d.Properties[segmentlog.BroadcastDeadlineProperty] == "" {
		t.Fatalf("copy properties %v", d.Properties)
	}

	// Idempotent by ID: the same request returns the task, appends nothing.
	again, err := b.Broadcast(ctx, req)
	if err != nil || again.Version != task.Version {
		t.Fatalf("again: %+v, %v", again, err)
	}
	other := req
	other.Payload = []byte("drop index")
	if _, err := b.Broadcast(ctx, other); !errors.Is(err, ErrBroadcastConflict) {
		t.Fatalf("same ID, other payload: %v", err)
	}
	checkOnce(t, task, copies(t, f.store, "p0", "p1")["ddl-1"])

	if _, err := f.reg.Drop(ctx, f.wal, "v2"); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]BroadcastRequest{
		"unknown vchannel": {ID: "b2", VChannels: []string{"v0", "nope"}},
		"dropped vchannel": {ID: "b2", VChannels: []string{"v2"}},
		"bad ID":           {ID: "../b", VChannels: []string{"v0"}},
		"no vchannels":     {ID: "b2"},
		"twice":            {ID: "b2", VChannels: []string{"v0", "v0"}},
		"ack mode":         {ID: "b2", VChannels: []string{"v0"}, Ack: "eventually"},
		"reserved prop":    {ID: "b2", VChannels: []string{"v0"}, Properties: map[string]string{segmentlog.BroadcastDeadlineProperty: "1"}},
		"empty prop key":   {ID: "b2", VChannels: []string{"v0"}, Properties: map[string]string{"": "x"}},
		"non-UTF-8 prop":   {ID: "b2", VChannels: []string{"v0"}, Properties: map[string]string{"k": "\xff"}},
	} {
		if _, err := b.Broadcast(ctx, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := b.Describe(ctx, "b2"); !errors.Is(err, ErrNoBroadcast) {
		t.Fatalf("a refused broadcast was persisted: %v", err)
	}
	if _, err := b.Broadcast(ctx, BroadcastRequest{ID: "b3", VChannels: []string{"v0"}}); err != nil {
		t.Fatal(err)
	}
	list, err := b.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "b3" || list[1].ID != "ddl-1" {
		t.Fatalf("list: %+v, %v", list, err)
	}
}

// crashingWAL passes appends to a ControlWAL and "kills" the run (cancels
// its context) after the n-th append landed, before the run could record
// it; lost makes every n-th reply lost instead.
type crashingWAL struct {
	inner  ControlWAL
	calls  atomic.Int64
	killAt int64
	kill   context.CancelFunc
	lostAt int64
}

func (c *crashingWAL) AppendControl(ctx context.Context, p string, msgs ...segmentlog.Message) ([]segmentlog.Ack, error) {
	n := c.calls.Add(1)
	acks, err := c.inner.AppendControl(ctx, p, msgs...)
	if err == nil && n == c.killAt {
		c.kill()
		return nil, context.Canceled
	}
	if err == nil && c.lostAt > 0 && n%c.lostAt == 0 {
		return nil, fmt.Errorf("reply lost: %w", segmentlog.ErrOutcomeUnknown)
	}
	return acks, err
}

// TestBroadcastResumedAfterCrash: a coordinator dies after persisting the
// task, then another after one copy landed but before it was recorded; a
// fresh coordinator resumes the task and every vchannel has one copy. Lost
// replies on the way change nothing either.
func TestBroadcastResumedAfterCrash(t *testing.T) {
	ctx := context.Background()
	f := newBroadcastFixture(t, []string{"p0", "p1", "p2"}, 6)
	req := BroadcastRequest{ID: "bc", VChannels: f.vchans, Payload: []byte("x")}

	// Crash 1: persisted, nothing appended.
	if _, err := f.broadcaster(t, nil, nil).Submit(ctx, req); err != nil {
		t.Fatal(err)
	}
	// Crash 2: the second copy lands, the run dies before recording it.
	rctx, kill := context.WithCancel(ctx)
	cw := &crashingWAL{inner: f.wal, killAt: 2, kill: kill}
	short := func(c *BroadcastConfig) { c.LockTTL, c.LockMargin = 600*time.Millisecond, 200*time.Millisecond }
	if _, err := f.broadcaster(t, cw, short).Run(rctx, "bc"); !errors.Is(err, context.Canceled) {
		t.Fatalf("killed run: %v", err)
	}
	mid, err := f.broadcaster(t, nil, nil).Describe(ctx, "bc")
	if err != nil || mid.State != BroadcastPending || !mid.started() ||
		!slices.ContainsFunc(mid.Targets, func(tg BroadcastTarget) bool { return tg.Appended == nil }) {
		t.Fatalf("after the crash: %+v, %v; want started, a landed copy unrecorded", mid, err)
	}
	for _, tg := range mid.Targets {
		if tg.FirstAttempt.IsZero() {
			t.Fatalf("target %s not started after the crash", tg.VChannel)
		}
	}
	// The locks stay with the task, which has started: no other task may
	// take them, and this one's next run takes them once they lapse.
	other, err := f.broadcaster(t, nil, nil).Broadcast(ctx, BroadcastRequest{ID: "other", VChannels: []string{"v1"}})
	if !errors.Is(err, ErrBroadcastBusy) {
		t.Fatalf("another task on a vchannel of the crashed one: %+v, %v", other, err)
	}
	lossy := &crashingWAL{inner: f.wal, lostAt: 2}
	b := f.broadcaster(t, lossy, short)
	var task Broadcast
	testkit.EventuallyNil(t, 30*time.Second, "both tasks resumed and done", func() error {
		if _, err := b.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		var oerr error
		var o Broadcast
		task, err = b.Describe(ctx, "bc")
		o, oerr = b.Describe(ctx, "other")
		return errors.Join(err, oerr, doneOr(task), doneOr(o))
	})
	got := copies(t, f.store, "p0", "p1", "p2")
	checkOnce(t, task, got["bc"])
	// The other task (persisted when it was refused, resumed with the
	// rest) comes after it on v1.
	if other, err = b.Describe(ctx, "other"); err != nil || other.State != BroadcastDone {
		t.Fatalf("other: %+v, %v", other, err)
	}
	if o, _ := other.Target("v1"); !task.Targets[1].Appended.ID.Less(o.Appended.ID) {
		t.Fatalf("other task at %v, before the crashed one's copy at %v", o.Appended.ID, task.Targets[1].Appended.ID)
	}
}

// TestBroadcastTwoCoordinators: two coordinator instances run the same task
// at once, many times over; each vchannel gets one copy.
func TestBroadcastTwoCoordinators(t *testing.T) {
	ctx := context.Background()
	f := newBroadcastFixture(t, []string{"p0", "p1"}, 4)
	bs := []*Broadcaster{f.broadcaster(t, nil, nil), f.broadcaster(t, nil, nil)}
	var busy atomic.Int64
	for i := range 10 {
		req := BroadcastRequest{ID: fmt.Sprintf("b%d", i), VChannels: f.vchans, Payload: []byte{byte(i)}}
		var wg sync.WaitGroup
		for _, b := range bs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					_, err := b.Broadcast(ctx, req)
					if !errors.Is(err, ErrBroadcastBusy) {
						if err != nil {
							t.Error(err)
						}
						return
					}
					busy.Add(1)
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
	}
	got := copies(t, f.store, "p0", "p1")
	for i := range 10 {
		task, err := bs[0].Describe(ctx, fmt.Sprintf("b%d", i))
		if err != nil || task.State != BroadcastDone {
			t.Fatalf("b%d: %+v, %v", i, task, err)
		}
		checkOnce(t, task, got[task.ID])
	}
	t.Logf("%d runs found the other instance holding the task", busy.Load())
	// Broadcasts sharing vchannels are serialised by their locks: every
	// vchannel sees them in the same order.
	checkSameOrder(t, f.store, []string{"p0", "p1"})
}

// checkSameOrder checks that every two broadcasts appear in the same
// relative order on every vchannel both reached.
func checkSameOrder(t *testing.T, store objstore.Store, pchannels []string) {
	t.Helper()
	rank := map[string]map[string]int{} // vchannel → broadcast → index
	for id, byV := range copies(t, store, pchannels...) {
		for v, ds := range byV {
			if rank[v] == nil {
				rank[v] = map[string]int{}
			}
			rank[v][id] = int(ds[0].ID.Offset)<<20 | int(ds[0].ID.Index)
		}
	}
	before := map[[2]string]string{}
	for v, r := range rank {
		for a, ra := range r {
			for b, rb := range r {
				if a < b {
					order := fmt.Sprint(ra < rb)
					if prev, ok := before[[2]string{a, b}]; ok && prev != order {
						t.Errorf("broadcasts %s and %s are in different orders on different vchannels (%s among them)", a, b, v)
					}
					before[[2]string{a, b}] = order
				}
			}
		}
	}
}

// TestBroadcastLockTakeover: a run that froze holding its locks loses them
// only after its deadline has passed by twice the margin; the run that
// takes over finishes the task, and the frozen run, when it thaws, finds
// its locks gone and its late copy refused by the writer.
func TestBroadcastLockTakeover(t *testing.T) {
	ctx := context.Background()
	f := newBroadcastFixture(t, []string{"p0"}, 2)
	short := func(c *BroadcastConfig) { c.LockTTL, c.LockMargin = 600*time.Millisecond, 200*time.Millisecond }
	a, b := f.broadcaster(t, nil, short), f.broadcaster(t, nil, short)
	task, err := a.Submit(ctx, BroadcastRequest{ID: "bc", VChannels: f.vchans})
	if err != nil {
		t.Fatal(err)
	}
	frozen := &run{t: task, nonce: "frozen"}
	if err := a.lockAll(ctx, frozen); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Run(ctx, "bc"); !errors.Is(err, ErrBroadcastBusy) {
		t.Fatalf("run while the locks are live: %v", err)
	}
	takeable := frozen.deadline.Add(2 * 200 * time.Millisecond)
	var done Broadcast
	testkit.EventuallyNil(t, 30*time.Second, "the frozen run's locks lapse", func() error {
		done, err = b.Run(ctx, "bc")
		if err != nil && !errors.Is(err, ErrBroadcastBusy) {
			t.Fatal(err)
		}
		return err
	})
	if now := time.Now(); now.Before(takeable) {
		t.Fatalf("locks taken over at %v, before the frozen run's deadline + 2m (%v)", now, takeable)
	}
	// The frozen run thaws: it cannot renew, and its copy is refused.
	frozen.deadline = time.Time{}
	if _, err := a.keepLocks(ctx, frozen); !errors.Is(err, ErrBroadcastBusy) {
		t.Fatalf("frozen run renewing: %v", err)
	}
	late := segmentlog.Message{Type: segmentlog.TypeBroadcast, VChannel: "v0", BroadcastID: "zombie",
		Properties: map[string]string{segmentlog.BroadcastDeadlineProperty: segmentlog.FormatBroadcastDeadline(takeable.Add(-400 * time.Millisecond))}}
	if _, err := f.wal.AppendControl(ctx, "p0", late); !errors.Is(err, segmentlog.ErrDeadlinePassed) {
		t.Fatalf("frozen run's late copy: %v", err)
	}
	checkOnce(t, done, copies(t, f.store, "p0")["bc"])
}

// TestBroadcastSyncAck: a sync-up task is not done until the flush
// checkpoint of every target's pchannel has passed its copy; with no
// flusher it waits, and the wait resumes where it stopped.
func TestBroadcastSyncAck(t *testing.T) {
	ctx := context.Background()
	f := newBroadcastFixture(t, []string{"p0", "p1"}, 2)
	b := f.broadcaster(t, nil, nil)
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err := b.Broadcast(wctx, BroadcastRequest{ID: "trunc", VChannels: f.vchans, Ack: AckSync})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sync broadcast with no flusher: %v, want a wait that times out", err)
	}
	task, err := b.Describe(ctx, "trunc")
	if err != nil || task.State != BroadcastPending {
		t.Fatalf("after the wait: %+v, %v", task, err)
	}
	for _, tg := range task.Targets {
		if tg.Appended == nil || tg.Synced {
			t.Fatalf("target %+v: want appended, not synced", tg)
		}
	}
	got := copies(t, f.store, "p0", "p1")["trunc"] // (read before the fake checkpoints below hide the WAL)
	// A flush of p0 passes its copy; p1 is not flushed yet.
	tg0 := task.Targets[0]
	writeCheckpoint(t, f.store, tg0.PChannel, tg0.Appended.ID.Offset+1)
	wctx2, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if _, err := b.Run(wctx2, "trunc"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("one pchannel flushed: %v", err)
	}
	if task, _ = b.Describe(ctx, "trunc"); !task.Targets[0].Synced || task.Targets[1].Synced {
		t.Fatalf("after p0's flush: %+v", task.Targets)
	}
	tg1 := task.Targets[1]
	writeCheckpoint(t, f.store, tg1.PChannel, tg1.Appended.ID.Offset+1)
	if task, err = b.Run(ctx, "trunc"); err != nil || task.State != BroadcastDone {
		t.Fatalf("both flushed: %+v, %v", task, err)
	}
	checkOnce(t, task, got)
}

func writeCheckpoint(t *testing.T, store objstore.Store, p string, c uint64) {
	t.Helper()
	body, err := json.Marshal(segmentlog.Checkpoint{Format: segmentlog.CheckpointFormat, PChannel: p, C: c, Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(context.Background(), testLayout.Checkpoint(p), body); err != nil {
		t.Fatal(err)
	}
}

// TestBroadcastTombstones: finished tasks stay for TombstoneRetention, then
// Collect deletes them; pending ones are never collected.
func TestBroadcastTombstones(t *testing.T) {
	ctx := context.Background()
	f := newBroadcastFixture(t, []string{"p0"}, 1)
	clk := &offsetClock{}
	b := f.broadcaster(t, nil, func(c *BroadcastConfig) { c.Now, c.TombstoneRetention = clk.Now, time.Minute })
	if _, err := b.Broadcast(ctx, BroadcastRequest{ID: "old", VChannels: f.vchans}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Submit(ctx, BroadcastRequest{ID: "pending", VChannels: f.vchans}); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Collect(ctx); err != nil || n != 0 {
		t.Fatalf("collect within retention: %d, %v", n, err)
	}
	clk.advance(2 * time.Minute)
	if n, err := b.Collect(ctx); err != nil || n != 1 {
		t.Fatalf("collect after retention: %d, %v", n, err)
	}
	if _, err := b.Describe(ctx, "old"); !errors.Is(err, ErrNoBroadcast) {
		t.Fatalf("collected task: %v", err)
	}
	if _, err := b.Describe(ctx, "pending"); err != nil {
		t.Fatalf("pending task: %v", err)
	}
	// Resubmitted after collection, the writers still know the copy.
	again, err := b.Broadcast(ctx, BroadcastRequest{ID: "old", VChannels: f.vchans})
	if err != nil {
		t.Fatal(err)
	}
	checkOnce(t, again, copies(t, f.store, "p0")["old"])
}

// offsetClock is the real clock plus an offset.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// hangingWAL lets n appends through, then holds every later call until
// released: the process died there (its locks stay held and lapse).
type hangingWAL struct {
	inner   ControlWAL
	n       atomic.Int64
	release chan struct{}
	parked  chan struct{} // closed when the first call hangs
	once    sync.Once
}

func (h *hangingWAL) AppendControl(ctx context.Context, p string, msgs ...segmentlog.Message) ([]segmentlog.Ack, error) {
	acks, err := h.inner.AppendControl(ctx, p, msgs...)
	if h.n.Add(-1) < 0 {
		h.once.Do(func() { close(h.parked) })
		<-h.release
		return nil, errors.New("the process is gone")
	}
	return acks, err
}

// TestBroadcastCoordinatorKilledMinIO, on MinIO: one coordinator persists
// a broadcast and dies; a second starts it and dies after its second copy
// landed, before recording it, holding the task's locks; a third,
// started afterwards, resumes it once the locks lapse. Every vchannel has
// the broadcast once, where the task says.
func TestBroadcastCoordinatorKilledMinIO(t *testing.T) {
	ctx := context.Background()
	st := testkit.MinIOStore(t, "coordinator")
	f := newBroadcastFixtureOn(t, st, []string{"p0", "p1"}, 4)
	short := func(c *BroadcastConfig) { c.LockTTL, c.LockMargin = time.Second, 250*time.Millisecond }
	req := BroadcastRequest{ID: "create-collection-7", VChannels: f.vchans, Payload: []byte(`{"schema":1}`)}
	if _, err := f.broadcaster(t, nil, short).Submit(ctx, req); err != nil {
		t.Fatal(err)
	}
	hang := &hangingWAL{inner: f.wal, release: make(chan struct{}), parked: make(chan struct{})}
	hang.n.Store(1)
	dead := make(chan error, 1)
	go func() { _, err := f.broadcaster(t, hang, short).Run(ctx, req.ID); dead <- err }()
	defer close(hang.release)
	testkit.Await(t, 30*time.Second, "the second coordinator hangs in a copy", hang.parked)

	b := f.broadcaster(t, nil, short)
	start := time.Now()
	var task Broadcast
	testkit.EventuallyNil(t, 30*time.Second, "the task resumed and done", func() error {
		if _, err := b.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		var err error
		if task, err = b.Describe(ctx, req.ID); err != nil {
			t.Fatal(err)
		}
		return doneOr(task)
	})
	t.Logf("resumed %v after the second coordinator died", time.Since(start).Round(time.Millisecond))
	checkOnce(t, task, copies(t, f.store, "p0", "p1")[req.ID])
}

// refusingWAL refuses every copy for good, as a writer refuses a message
// that breaks its rules.
type refusingWAL struct{}

func (refusingWAL) AppendControl(context.Context, string, ...segmentlog.Message) ([]segmentlog.Ack, error) {
	return nil, fmt.Errorf("append: %w: some rule", segmentlog.ErrInvalidMessage)
}

// TestBroadcastEdges: a copy refused for good fails the task at once and
// frees its locks; Resume does not wait on a sync-up task with no flush,
// so the tasks after it finish; a vchannel whose create message has not
// landed is no target yet; an oversized broadcast is refused before it is
// saved.
func TestBroadcastEdges(t *testing.T) {
	ctx := context.Background()
	f := newBroadcastFixture(t, []string{"p0", "p1"}, 2)

	refused, err := f.broadcaster(t, refusingWAL{}, nil).Broadcast(ctx, BroadcastRequest{ID: "bad", VChannels: f.vchans})
	if !errors.Is(err, ErrBroadcastFailed) || refused.State != BroadcastFailed || refused.Error == "" {
		t.Fatalf("refused copy: %+v, %v", refused, err)
	}
	b := f.broadcaster(t, nil, nil)
	if _, err := b.Broadcast(ctx, BroadcastRequest{ID: "after-bad", VChannels: f.vchans}); err != nil {
		t.Fatalf("a broadcast after a failed one on the same vchannels: %v", err)
	}

	// Resume with no deadline: the sync task is looked at and left.
	if _, err := b.Submit(ctx, BroadcastRequest{ID: "a-sync", VChannels: f.vchans, Ack: AckSync}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Submit(ctx, BroadcastRequest{ID: "b-fast", VChannels: f.vchans}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := b.Resume(ctx); err != nil {
				t.Error(err)
				return
			}
			if task, _ := b.Describe(ctx, "b-fast"); task.State == BroadcastDone {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Resume is held up by a sync task waiting for a flush")
	}
	if task, _ := b.Describe(ctx, "a-sync"); task.State != BroadcastPending {
		t.Fatalf("sync task with no flush: %+v", task)
	}

	// A create interrupted before its message landed.
	failing := &writersWAL{writers: f.wal.writers, fail: func(string) (bool, bool) { return true, false }}
	if _, err := f.reg.Create(ctx, failing, "half", "p0"); err == nil {
		t.Fatal("create through a failing WAL succeeded")
	}
	if _, err := b.Submit(ctx, BroadcastRequest{ID: "to-half", VChannels: []string{"half"}}); !errors.Is(err, ErrVChannelNotReady) {
		t.Fatalf("broadcast to a half-created vchannel: %v", err)
	}
	big := BroadcastRequest{ID: "big", VChannels: f.vchans, Payload: make([]byte, MaxBroadcastBytes+1)}
	if _, err := b.Submit(ctx, big); !errors.Is(err, segmentlog.ErrTooLarge) {
		t.Fatalf("oversized broadcast: %v", err)
	}
}

// downWAL fails every copy as a store outage would: retryable, forever.
type downWAL struct{}

func (downWAL) AppendControl(context.Context, string, ...segmentlog.Message) ([]segmentlog.Ack, error) {
	return nil, fmt.Errorf("append: %w", objstore.ErrTransient)
}

// TestResumeWithinBudget: a round whose task cannot finish (its pchannel
// does not take the copy) ends at its budget with no error and leaves the
// task pending for the next round.
func TestResumeWithinBudget(t *testing.T) {
	ctx := context.Background()
	f := newBroadcastFixture(t, []string{"p0"}, 1)
	req := BroadcastRequest{ID: "b-budget", VChannels: f.vchans}
	b := f.broadcaster(t, downWAL{}, nil)
	if _, err := b.Submit(ctx, req); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := b.ResumeWithin(ctx, 200*time.Millisecond)
	if err != nil || n != 0 {
		t.Fatalf("a round cut by its budget: %d finished, %v; want 0, nil", n, err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the round took %v, its budget was 200ms", took)
	}
	if task, err := b.Describe(ctx, req.ID); err != nil || task.State != BroadcastPending {
		t.Fatalf("task after the round: %+v, %v; want pending", task, err)
	}
}

// vchannelReads counts the GETs of vchannel records.
type vchannelReads struct {
	objstore.Store
	n atomic.Int64
}

func (s *vchannelReads) Get(ctx context.Context, key string) (objstore.Object, error) {
	if strings.Contains(key, "/vchannels/") {
		s.n.Add(1)
	}
	return s.Store.Get(ctx, key)
}

// TestBroadcastReadsEachVChannelOnce: a new broadcast reads each target's
// vchannel record once (Submit's check), not again when its run starts.
func TestBroadcastReadsEachVChannelOnce(t *testing.T) {
	ctx := context.Background()
	store := &vchannelReads{Store: objstore.NewMemory()}
	f := newBroadcastFixtureOn(t, store, []string{"p0", "p1"}, 4)
	b := f.broadcaster(t, nil, nil)
	store.n.Store(0)
	task, err := b.Broadcast(ctx, BroadcastRequest{ID: "once", VChannels: f.vchans, Payload: []byte("x")})
	if err != nil || task.State != BroadcastDone {
		t.Fatalf("broadcast: %+v, %v", task, err)
	}
	if got := store.n.Load(); got != int64(len(f.vchans)) {
		t.Fatalf("a broadcast to %d vchannels read their records %d times, want once each", len(f.vchans), got)
	}
}

// doneOr is nil once task is done, else an error that shows it.
func doneOr(task Broadcast) error {
	if task.State != BroadcastDone {
		return fmt.Errorf("task %s: %+v", task.ID, task)
	}
	return nil
}
