package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	"github.com/cairnlog/cairn/segmentlog"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// writersWAL is a ControlWAL over writers of this process, one per
// pchannel. fail, if set, decides per call whether to fail it, before or
// after the append (a lost reply).
type writersWAL struct {
	mu      sync.Mutex
	writers map[string]*segmentlog.Writer
	fail    func(pchannel string) (before, after bool)
}

func (w *writersWAL) AppendControl(ctx context.Context, p string, msgs ...segmentlog.Message) ([]segmentlog.Ack, error) {
	w.mu.Lock()
	wr, fail := w.writers[p], w.fail
	w.mu.Unlock()
	var before, after bool
	if fail != nil {
		before, after = fail(p)
	}
	if before || wr == nil {
		return nil, fmt.Errorf("no writer of %s reachable: %w", p, objstore.ErrTransient)
	}
	acks, err := wr.AppendControl(ctx, msgs...)
	if err == nil && after {
		return nil, fmt.Errorf("reply lost: %w", segmentlog.ErrOutcomeUnknown)
	}
	return acks, err
}

type registryFixture struct {
	store  objstore.Store
	clk    *fakeClock
	leases *Leases
	reg    *Registry
	wal    *writersWAL
}

func newRegistryFixture(t *testing.T, pchannels ...string) *registryFixture {
	t.Helper()
	return newRegistryFixtureOn(t, objstore.NewMemory(), pchannels...)
}

func newRegistryFixtureOn(t *testing.T, store objstore.Store, pchannels ...string) *registryFixture {
	t.Helper()
	clk := newFakeClock()
	leases := newTestLeases(t, store, clk.Now)
	reg, err := NewRegistry(Config{Layout: testLayout, PChannels: pchannels, Now: clk.Now, Logger: quietLog}, store, leases)
	if err != nil {
		t.Fatal(err)
	}
	f := &registryFixture{store: store, clk: clk, leases: leases, reg: reg, wal: &writersWAL{writers: map[string]*segmentlog.Writer{}}}
	for _, p := range pchannels {
		// The writers use the real clock through their own lease service:
		// the fake clock stands still.
		wl, err := NewLeases(store, testLayout, LeaseConfig{})
		if err != nil {
			t.Fatal(err)
		}
		w, err := segmentlog.OpenWriter(context.Background(), segmentlog.WriterConfig{
			PChannel: p, Layout: testLayout, Holder: "node-" + p, Logger: quietLog,
		}, store, wl)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close(context.Background()) })
		f.wal.writers[p] = w
	}
	return f
}

// controlMessages scans pchannel p for create and drop messages.
func controlMessages(t *testing.T, store objstore.Store, p string) []segmentlog.Delivery {
	t.Helper()
	return testkit.Scan(t, context.Background(), store, segmentlog.ScannerConfig{PChannel: p, Layout: testLayout,
		Types: []segmentlog.MessageType{segmentlog.TypeCreateVChannel, segmentlog.TypeDropVChannel}})
}

func TestRegistryCreate(t *testing.T) {
	ctx := context.Background()
	f := newRegistryFixture(t, "p0", "p1", "p2")
	var got []string
	for i := range 5 {
		v, err := f.reg.Create(ctx, f.wal, fmt.Sprintf("v%d", i), "")
		if err != nil {
			t.Fatal(err)
		}
		if v.State != VChannelActive || v.Created == nil || v.Version != 2 {
			t.Fatalf("created %+v", v)
		}
		got = append(got, v.PChannel)
	}
	if want := []string{"p0", "p1", "p2", "p0", "p1"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bindings %v, want least loaded first: %v", got, want)
	}
	// Explicit binding, then idempotent creates.
	v, err := f.reg.Create(ctx, f.wal, "pinned-to-p2", "p2")
	if err != nil || v.PChannel != "p2" {
		t.Fatalf("explicit: %+v, %v", v, err)
	}
	for _, want := range []string{"", "p2"} {
		again, err := f.reg.Create(ctx, f.wal, "pinned-to-p2", want)
		if err != nil || again.Version != v.Version || *again.Created != *v.Created {
			t.Fatalf("create again (%q): %+v, %v", want, again, err)
		}
	}
	if _, err := f.reg.Create(ctx, f.wal, "pinned-to-p2", "p0"); !errors.Is(err, ErrBindingConflict) {
		t.Fatalf("other binding: %v", err)
	}
	if _, err := f.reg.Create(ctx, f.wal, "vx", "p9"); !errors.Is(err, ErrUnknownPChannel) {
		t.Fatalf("unknown pchannel: %v", err)
	}
	if _, err := f.reg.Create(ctx, f.wal, "../v", ""); !errors.Is(err, segmentlog.ErrInvalidName) {
		t.Fatalf("bad name: %v", err)
	}
	// One create message per vchannel, where the record says.
	for _, p := range []string{"p0", "p1", "p2"} {
		vs, err := f.reg.List(ctx, VChannelFilter{PChannel: p})
		if err != nil {
			t.Fatal(err)
		}
		msgs := controlMessages(t, f.store, p)
		if len(msgs) != len(vs) {
			t.Fatalf("%s: %d create messages for %d vchannels", p, len(msgs), len(vs))
		}
		byName := map[string]VChannel{}
		for _, v := range vs {
			byName[v.Name] = v
		}
		for _, d := range msgs {
			v, ok := byName[d.VChannel]
			if d.Type != segmentlog.TypeCreateVChannel || !ok || d.ID != v.Created.ID || d.TimeTick != v.Created.TimeTick {
				t.Fatalf("%s: message %v %s %s, record %+v", p, d.ID, d.Type, d.VChannel, v)
			}
			delete(byName, d.VChannel)
		}
	}
	if ps, err := f.reg.PChannels(ctx); err != nil || fmt.Sprint(ps) != "[p0 p1 p2]" {
		t.Fatalf("pchannels %v, %v", ps, err)
	}
}

func TestRegistryDrop(t *testing.T) {
	ctx := context.Background()
	f := newRegistryFixture(t, "p0")
	if _, err := f.reg.Create(ctx, f.wal, "v1", ""); err != nil {
		t.Fatal(err)
	}
	pos := Position{ID: segmentlog.MessageID{Offset: 9}, TimeTick: 77}
	if v, err := f.reg.AdvancePosition(ctx, "v1", pos); err != nil || v.Position != pos {
		t.Fatalf("advance: %+v, %v", v, err)
	}
	// The drop message's reply is lost: the record is dropped (position
	// done) but does not know where the message landed.
	f.wal.fail = func(string) (bool, bool) { return false, true }
	v, err := f.reg.Drop(ctx, f.wal, "v1")
	if err == nil || v.State != VChannelDropped || !v.Position.Done || v.Dropped != nil {
		t.Fatalf("drop with a lost reply: %+v, %v", v, err)
	}
	// A stale flusher cannot write a position back.
	if _, err := f.reg.AdvancePosition(ctx, "v1", Position{ID: segmentlog.MessageID{Offset: 50}}); !errors.Is(err, ErrVChannelDropped) {
		t.Fatalf("advance after drop: %v", err)
	}
	// Drop again finishes: the idempotency key keeps it to one message.
	f.wal.fail = nil
	v, err = f.reg.Drop(ctx, f.wal, "v1")
	if err != nil || v.Dropped == nil || v.Position != (Position{ID: pos.ID, TimeTick: pos.TimeTick, Done: true}) {
		t.Fatalf("drop again: %+v, %v", v, err)
	}
	again, err := f.reg.Drop(ctx, f.wal, "v1")
	if err != nil || again.Version != v.Version {
		t.Fatalf("third drop wrote: %+v, %v", again, err)
	}
	var drops []segmentlog.Delivery
	for _, d := range controlMessages(t, f.store, "p0") {
		if d.Type == segmentlog.TypeDropVChannel {
			drops = append(drops, d)
		}
	}
	if len(drops) != 1 || drops[0].ID != v.Dropped.ID || drops[0].VChannel != "v1" {
		t.Fatalf("drop messages %+v, record %+v", drops, v.Dropped)
	}
	// The pchannel's checkpoint is not moved by a drop.
	cp, _, err := segmentlog.ReadCheckpoint(ctx, f.store, testLayout, "p0")
	if err != nil || cp.C != 0 || cp.Version != 0 {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
	if _, err := f.reg.Create(ctx, f.wal, "v1", ""); !errors.Is(err, ErrVChannelDropped) {
		t.Fatalf("re-create a dropped name: %v", err)
	}
	if _, err := f.reg.Drop(ctx, f.wal, "nope"); !errors.Is(err, ErrNoVChannel) {
		t.Fatalf("drop unknown: %v", err)
	}
	// A drop whose message cannot be sent at all leaves the record dropped.
	if _, err := f.reg.Create(ctx, f.wal, "v2", ""); err != nil {
		t.Fatal(err)
	}
	f.wal.fail = func(string) (bool, bool) { return true, false }
	if v, err := f.reg.Drop(ctx, f.wal, "v2"); err == nil || v.State != VChannelDropped {
		t.Fatalf("drop with no writer: %+v, %v", v, err)
	}
}

func TestRegistryPinsAndReclaim(t *testing.T) {
	ctx := context.Background()
	f := newRegistryFixture(t, "p0")
	if _, err := f.reg.Create(ctx, f.wal, "v1", ""); err != nil {
		t.Fatal(err)
	}
	if p, err := f.reg.Pin(ctx, "v1", "snap-a"); err != nil || p != "p0" {
		t.Fatalf("pin: %q, %v", p, err)
	}
	if _, err := f.reg.MarkReclaiming(ctx, "v1"); !errors.Is(err, ErrVChannelActive) {
		t.Fatalf("reclaim active: %v", err)
	}
	if _, err := f.reg.Drop(ctx, f.wal, "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Pin(ctx, "v1", "snap-b"); !errors.Is(err, ErrVChannelDropped) {
		t.Fatalf("pin after drop: %v", err)
	}
	if ok, err := f.reg.MarkReclaiming(ctx, "v1"); ok || err != nil {
		t.Fatalf("reclaim pinned: %t, %v", ok, err)
	}
	if d, err := f.reg.Dropped(ctx, "p0"); err != nil || fmt.Sprint(d) != "[v1]" {
		t.Fatalf("dropped: %v, %v", d, err)
	}
	if err := f.reg.Unpin(ctx, "v1", "snap-a"); err != nil {
		t.Fatalf("unpin: %v", err)
	}
	if err := f.reg.Unpin(ctx, "v1", "snap-a"); err != nil {
		t.Fatalf("unpin again: %v", err)
	}
	for range 2 {
		if ok, err := f.reg.MarkReclaiming(ctx, "v1"); !ok || err != nil {
			t.Fatalf("reclaim: %t, %v", ok, err)
		}
	}
	if v, err := f.reg.Describe(ctx, "v1"); err != nil || v.State != VChannelReclaiming || len(v.Pins) != 0 {
		t.Fatalf("after reclaim: %+v, %v", v, err)
	}
	if _, err := f.reg.MarkReclaiming(ctx, "nope"); !errors.Is(err, ErrNoVChannel) {
		t.Fatalf("reclaim unknown: %v", err)
	}
	if _, err := f.reg.Pin(ctx, "v1", "snap-c"); !errors.Is(err, ErrVChannelDropped) {
		t.Fatalf("pin while reclaiming: %v", err)
	}
	if _, err := f.reg.Pin(ctx, "v1", "bad/name"); !errors.Is(err, segmentlog.ErrInvalidName) {
		t.Fatalf("bad snapshot name: %v", err)
	}
	// Filters.
	if _, err := f.reg.Create(ctx, f.wal, "v2", ""); err != nil {
		t.Fatal(err)
	}
	for filter, want := range map[VChannelFilter]string{
		{}:                                       "[v1 v2]",
		{State: VChannelActive}:                  "[v2]",
		{State: VChannelReclaiming}:              "[v1]",
		{PChannel: "p0", State: VChannelDropped}: "[]",
		{PChannel: "p1"}:                         "[]",
	} {
		vs, err := f.reg.List(ctx, filter)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, v := range vs {
			names = append(names, v.Name)
		}
		if got := fmt.Sprintf("%v", names); got != want && !(want == "[]" && len(names) == 0) {
			t.Errorf("List(%+v) = %s, want %s", filter, got, want)
		}
	}
	if _, err := f.reg.Describe(ctx, "v3"); !errors.Is(err, ErrNoVChannel) {
		t.Fatalf("describe unknown: %v", err)
	}
}

// TestPinReclaimRace: concurrent pins and a reclaim never leave a
// reclaiming vchannel with a pin, and every pin that succeeded was taken
// before the drop.
func TestPinReclaimRace(t *testing.T) {
	ctx := context.Background()
	f := newRegistryFixture(t, "p0")
	if _, err := f.reg.Create(ctx, f.wal, "v", ""); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	pinned := map[string]bool{}
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("s%d", i)
			if _, err := f.reg.Pin(ctx, "v", name); err == nil {
				mu.Lock()
				pinned[name] = true
				mu.Unlock()
			} else if !errors.Is(err, ErrVChannelDropped) {
				t.Error(err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := f.reg.Drop(ctx, f.wal, "v"); err != nil {
			t.Error(err)
		}
	}()
	wg.Wait()
	v, err := f.reg.Describe(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Pins) != len(pinned) {
		t.Fatalf("pins %v, successful pins %v", v.Pins, pinned)
	}
	for _, s := range v.Pins {
		if ok, err := f.reg.MarkReclaiming(ctx, "v"); ok || err != nil {
			t.Fatalf("reclaim with pins %v: %t, %v", v.Pins, ok, err)
		}
		if err := f.reg.Unpin(ctx, "v", s); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := f.reg.MarkReclaiming(ctx, "v"); !ok || err != nil {
		t.Fatalf("reclaim: %t, %v", ok, err)
	}
	if v, err := f.reg.Describe(ctx, "v"); err != nil || v.State != VChannelReclaiming || len(v.Pins) != 0 {
		t.Fatalf("after reclaim: %+v, %v", v, err)
	}
}

func TestLocate(t *testing.T) {
	ctx := context.Background()
	f := newRegistryFixture(t, "p0", "p1")
	// p0's writer was opened by holder "node-p0"; give that node a session.
	rec := records{store: f.store, timeout: time.Second, now: f.clk.Now}
	if _, _, err := updateRecord(ctx, rec, sessionCodec(testLayout), "node-p0", func(cur *Session, now time.Time) (Session, error) {
		return decideRegister(cur, "node-p0", "http://127.0.0.1:7001", "i1", now), nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Create(ctx, f.wal, "v0", "p0"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Create(ctx, f.wal, "v1", "p1"); err != nil {
		t.Fatal(err)
	}
	// The registry's clock stands at t0, far behind the writers' real
	// clock: every lease they took is live by it.
	loc, err := f.reg.Locate(ctx, "v0")
	if err != nil || loc.PChannel != "p0" || loc.Node != "node-p0" || loc.Address != "http://127.0.0.1:7001" || loc.Term != 1 {
		t.Fatalf("locate v0: %+v, %v", loc, err)
	}
	// A holder without a session: no address.
	if loc, err := f.reg.Locate(ctx, "v1"); err != nil || loc.Node != "node-p1" || loc.Address != "" {
		t.Fatalf("locate v1: %+v, %v", loc, err)
	}
	// Released lease: no holder.
	w := f.wal.writers["p1"]
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Locate(ctx, "v1"); !errors.Is(err, ErrNoHolder) {
		t.Fatalf("locate after release: %v", err)
	}
	if _, err := f.reg.Drop(ctx, f.wal, "v0"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Locate(ctx, "v0"); !errors.Is(err, ErrVChannelDropped) {
		t.Fatalf("locate dropped: %v", err)
	}
	if _, err := f.reg.Locate(ctx, "nope"); !errors.Is(err, ErrNoVChannel) {
		t.Fatalf("locate unknown: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"bad pchannel", Config{PChannels: []string{"p/0"}}, false},
		{"duplicate pchannel", Config{PChannels: []string{"p0", "p0"}}, false},
		{"ttl below two heartbeats", Config{HeartbeatInterval: time.Second, SessionTTL: 1500 * time.Millisecond}, false},
		{"negative poll", Config{PollInterval: -time.Second}, false},
	}
	for _, tc := range tests {
		if err := tc.cfg.withDefaults().Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%t", tc.name, err, tc.ok)
		}
	}
	d := Config{}.withDefaults()
	if fmt.Sprint(d.PChannels) != "[p0 p1 p2 p3]" || d.HeartbeatInterval != 3*time.Second || d.SessionTTL != 10*time.Second ||
		d.PollInterval != 2*time.Second || d.CheckInterval != time.Second || d.StuckTimeout != 30*time.Second {
		t.Fatalf("defaults %+v", d)
	}
}
