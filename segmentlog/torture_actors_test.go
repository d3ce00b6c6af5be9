package segmentlog_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/objstoretest"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// thawMoment is when a frozen zombie comes back, relative to the takeover
// of its pchannel. Zombies take the moments in turn, so that every run of
// a few rounds reaches each of them.
type thawMoment int

const (
	thawBeforeTakeover thawMoment = iota // as soon as its lease is takeable: its PUTs race the next acquire
	thawDuringFence                      // just before a newer term's fence PUT: its queued PUTs land first
	thawAfterFence                       // right after a newer fence landed: its PUTs meet the window
	thawLate                             // two TTLs later: the new holder is well under way
	numThawMoments
)

// thawCycle is the order zombies take the moments in: the two around the
// fence, where a zombie's PUTs meet the new window, come twice.
var thawCycle = []thawMoment{thawAfterFence, thawDuringFence, thawBeforeTakeover, thawLate, thawAfterFence, thawDuringFence}

var thawNames = [numThawMoments]string{"before the takeover", "during the fence", "after the fence", "late"}

// turnEnd is how an actor's turn ends.
type turnEnd int

const (
	endGraceful turnEnd = iota // close and release
	endCrash                   // every call from then on dropped or unanswered
	endZombie                  // frozen mid-turn, back at a thaw moment
)

// endCycle is how the first turns of a run end, so that even a short run
// has zombies at every thaw moment; later turns end at random.
var endCycle = []turnEnd{endZombie, endZombie, endCrash, endZombie, endZombie, endGraceful, endZombie, endCrash}

// nextEnd picks how the next turn ends; putBack returns a pick whose turn
// never started (its writer did not open).
func (e *actorEnv) nextEnd(rng *rand.Rand) turnEnd {
	e.run.mu.Lock()
	defer e.run.mu.Unlock()
	if n := len(e.run.returned); n > 0 {
		end := e.run.returned[n-1]
		e.run.returned = e.run.returned[:n-1]
		return end
	}
	if e.run.turns < len(endCycle) {
		e.run.turns++
		return endCycle[e.run.turns-1]
	}
	switch r := rng.IntN(10); {
	case r < 3:
		return endGraceful
	case r < 5:
		return endCrash
	default:
		return endZombie
	}
}

func (e *actorEnv) putBack(end turnEnd) {
	e.run.mu.Lock()
	defer e.run.mu.Unlock()
	e.run.returned = append(e.run.returned, end)
}

// writeKind is how an actor writes during a turn.
type writeKind int

const (
	kindExclusive writeKind = iota // OpenWriter: waits for a free lease
	kindTakeover                   // OpenWriter with Takeover: takes a live lease over
	kindShared                     // OpenSharedWriter: appends under the shared term, with whoever else does
	numWriteKinds
)

var kindNames = [numWriteKinds]string{"exclusive", "takeover", "shared"}

// kindCycle is the write kind of the first turns of a run; later turns
// pick at random. Shared turns come often so that actors share a term.
var kindCycle = []writeKind{kindTakeover, kindExclusive, kindShared, kindTakeover, kindExclusive, kindShared}

func (e *actorEnv) nextKind(rng *rand.Rand) writeKind {
	if n := e.run.kinds.Add(1) - 1; n < int64(len(kindCycle)) {
		return kindCycle[n]
	}
	switch r := rng.IntN(10); {
	case r < 3:
		return kindShared
	case r < 5:
		return kindTakeover
	default:
		return kindExclusive
	}
}

// tortureWriter is what the producers use: a Writer or a SharedWriter.
type tortureWriter interface {
	Append(ctx context.Context, msgs ...sl.Message) ([]sl.Ack, error)
	Sync(ctx context.Context) (uint64, error)
	Close(ctx context.Context) error
	Err() error
	Term() uint64
}

// scheduleCounters prove that the fault schedule reached the states the
// fence protocol exists for; runTorture prints them and fails a run in
// which one stayed zero.
type scheduleCounters struct {
	thaws        [numThawMoments]int64
	putsInFlight int64 // slot PUTs blocked in a freeze and sent at thaw
	callsFrozen  int64 // store calls of any kind blocked in a freeze
	crashPending int64 // crashes with slot PUTs still to send
	lateApplied  int64 // writes sent to the store after their caller timed out
	lateRefused  int64 // late writes the store refused: they met a taken slot (a takeover's, or the retry's)
	clockJumps   int64
	kinds        [numWriteKinds]int64 // turns that opened a writer of each kind
	sharedAdopts int64                // shared turns that adopted a term another actor opened
	sharedRaces  int64                // shared PUTs that lost their slot to another writer
	liveTakeover int64                // takeover turns that took a lease whose holder was live
}

func (c *scheduleCounters) add(o scheduleCounters) {
	for i := range c.thaws {
		c.thaws[i] += o.thaws[i]
	}
	c.putsInFlight += o.putsInFlight
	c.callsFrozen += o.callsFrozen
	c.crashPending += o.crashPending
	c.lateApplied += o.lateApplied
	c.lateRefused += o.lateRefused
	c.clockJumps += o.clockJumps
	for i := range c.kinds {
		c.kinds[i] += o.kinds[i]
	}
	c.sharedAdopts += o.sharedAdopts
	c.sharedRaces += o.sharedRaces
	c.liveTakeover += o.liveTakeover
}

func (c scheduleCounters) String() string {
	return fmt.Sprintf("thaws %s %d / %s %d / %s %d / %s %d, %d slot PUTs (%d calls) in flight when frozen, %d crashes with appends pending, %d late applies (%d met a taken slot), %d clock jumps; turns %s %d / %s %d (%d of a live lease) / %s %d (%d adopted, %d lost races)",
		thawNames[0], c.thaws[0], thawNames[1], c.thaws[1], thawNames[2], c.thaws[2], thawNames[3], c.thaws[3],
		c.putsInFlight, c.callsFrozen, c.crashPending, c.lateApplied, c.lateRefused, c.clockJumps,
		kindNames[0], c.kinds[0], kindNames[1], c.kinds[1], c.liveTakeover, kindNames[2], c.kinds[2], c.sharedAdopts, c.sharedRaces)
}

// check fails the run if the schedule never reached one of the states.
func (c scheduleCounters) check(t *testing.T, mixed bool) {
	t.Helper()
	if mixed {
		// Shared writers and takeovers fence the classic schedule's
		// writers early; what this schedule must reach is its own.
		if c.liveTakeover == 0 || c.sharedAdopts == 0 || c.sharedRaces == 0 || c.thaws == [numThawMoments]int64{} {
			t.Errorf("schedule: no forced takeover of a live lease, shared term adopted, shared race lost or zombie thawed (%v); run more rounds", c)
		}
		return
	}
	for i, n := range c.thaws {
		if n == 0 {
			t.Errorf("schedule: no zombie thawed %s; run more rounds", thawNames[i])
		}
	}
	if c.putsInFlight == 0 || c.crashPending == 0 || c.lateApplied == 0 || c.clockJumps == 0 {
		t.Errorf("schedule: a dangerous state was never reached (%v); run more rounds", c)
	}
}

// actorEnv is what the actors of one round share.
type actorEnv struct {
	t        *testing.T
	tm       tortureTimings
	pch      string
	layout   sl.Layout
	leaseCfg coordinator.LeaseConfig
	watch    *fenceWatch
	hist     *history
	deadline time.Time
	run      *runState
	mixed    bool // see tortureConfig.mixed

	mu       sync.Mutex
	faults   []*objstore.Fault
	totals   tortureTotals
	schedule scheduleCounters
}

// runActor is one actor: turn after turn it takes the lease, appends through
// its own faulty store with a clock of its own, and ends the turn by closing,
// crashing, or freezing mid-turn and coming back as a zombie.
func (e *actorEnv) runActor(ctx context.Context, a int, seed uint64) {
	t, tm := e.t, e.tm
	arng := rand.New(rand.NewPCG(seed, 1))
	// Five producers: up to five batch PUTs in flight at once, so that a
	// freeze catches several (vchannels v0–v4).
	var producers []*producer
	for i := range 5 {
		producers = append(producers, &producer{name: fmt.Sprintf("%s-a%d-p%d", e.pch, a, i)})
	}
	txp := &txnProducer{name: fmt.Sprintf("%s-a%d-tx", e.pch, a)}
	retryKind := writeKind(-1) // a kind whose open failed, tried again next turn
	for turn := 0; time.Now().Before(e.deadline); turn++ {
		fault := objstore.NewFault(e.watch, objstore.FaultConfig{
			Seed: arng.Uint64(), ErrorRate: 0.03, LostReplyRate: 0.02, DelayedApplyRate: 0.02,
			// Late enough to straddle a takeover: past the lease and its margin.
			DelayedApply: tm.put*2 + time.Duration(arng.Int64N(int64(tm.ttl+2*tm.margin))),
			Jitter:       time.Millisecond,
		})
		e.mu.Lock()
		e.faults = append(e.faults, fault)
		e.mu.Unlock()
		fz := newProcess(fault)
		now := e.clock(arng)
		leases, err := coordinator.NewLeases(fz, e.layout, e.leaseCfg, coordinator.WithClock(now), coordinator.WithRequestTimeout(tm.get))
		if err != nil {
			t.Error(err)
			return
		}
		// How the turn ends is decided now: a zombie's writer sends small
		// batches (one or two messages each), so that several PUTs are in
		// flight when it freezes; the others, half the time.
		end := e.nextEnd(arng)
		batch := []int{256, 4 << 10}[arng.IntN(2)]
		if end == endZombie {
			batch = 256
		}
		kind := retryKind
		switch {
		case !e.mixed:
			kind = kindExclusive
		case kind >= 0:
		case turn == 0:
			kind = kindShared // every actor starts in the shared term: adoptions and lost races in every round
		case e.run.liveTakeovers.Load() == 0 && e.leaseLive(ctx, leases, now()):
			// Until a takeover met a live lease, a live one is taken over
			// at once: shared turns, whose open terms do not count, would
			// otherwise leave a run of three rounds without one now and
			// then (1 run in 4-8).
			kind = kindTakeover
		default:
			kind = e.nextKind(arng)
			if kind == kindShared && end == endZombie && e.run.garbageSeen.Load() == 0 {
				// A shared writer has one PUT in flight at most; until a
				// writer met a zombie's PUT in its window (garbage),
				// zombies are exclusive writers with several.
				kind = kindExclusive
			}
		}
		retryKind = -1
		cfg := sl.WriterConfig{
			PChannel: e.pch, Layout: e.layout, Holder: fmt.Sprintf("actor%d", a),
			PutTimeout: tm.put, GetTimeout: tm.get, RenewInterval: tm.renew, Now: now, Logger: quietLog,
			MaxBatchBytes: batch, Linger: time.Duration(arng.IntN(2)) * time.Millisecond,
			Takeover: kind == kindTakeover, FreshFor: tm.ttl,
		}
		var w tortureWriter
		var ex *sl.Writer
		var sw *sl.SharedWriter
		live := kind == kindTakeover && e.leaseLive(ctx, leases, now())
		if kind == kindShared {
			// A call gives up after this when the tail stays contended or
			// the store does not answer (a frozen process's calls).
			cfg.PutRetryLimit = 20 * tm.put
			sw, err = sl.OpenSharedWriter(ctx, cfg, fz, leases)
			w = sw
		} else {
			ex, err = sl.OpenWriter(ctx, cfg, fz, leases)
			w = ex
		}
		if err != nil {
			e.putBack(end)
			retryKind = kind // the next turn tries the same kind: a shared open that met another's opening adopts it next
			if errors.Is(err, sl.ErrInvariant) {
				t.Errorf("actor %d: open: %v", a, err)
				return
			}
			time.Sleep(tm.renew)
			continue
		}
		e.count(func(tt *tortureTotals, sc *scheduleCounters) {
			tt.writers++
			sc.kinds[kind]++
			if live {
				sc.liveTakeover++
				e.run.liveTakeovers.Add(1)
			}
			if sw != nil && !sw.Stats().Opened {
				sc.sharedAdopts++
			}
		})
		graceful := end == endGraceful
		turnEnd := time.Now().Add(time.Duration(arng.Int64N(int64(tm.round/5))) + tm.renew)
		if end == endCrash {
			// Crash early, before a takeover or shared turn of another
			// actor fences this writer, while its PUTs are in flight.
			turnEnd = time.Now().Add(time.Duration(arng.Int64N(int64(tm.renew))) + tm.renew/2)
		}
		// Producers keep appending through a crash or a freeze, so that
		// PUTs are in flight when it strikes.
		until := turnEnd
		if !graceful {
			until = turnEnd.Add(8 * tm.ttl)
		}
		var pwg sync.WaitGroup
		for _, p := range producers {
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				p.run(ctx, t, w, e.hist, until)
			}()
		}
		if ex != nil { // transactions live in an exclusive writer
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				txp.run(ctx, t, ex, e.hist, until)
			}()
		}
		// Sync now and then, concurrently with the appends.
		for time.Now().Before(turnEnd) && w.Err() == nil {
			time.Sleep(tm.renew / 2)
			if tk, err := w.Sync(ctx); err == nil {
				e.hist.recordSync(tk)
			}
		}
		switch {
		case graceful:
			pwg.Wait()
			_ = w.Close(ctx)
		case end == endCrash: // crash: every call from now on fails, nothing more lands
			// With PUTs in flight: freeze until one is held, crash, and
			// let the held calls go out as a dying process's.
			fz.Freeze()
			for end := time.Now().Add(4 * tm.put); fz.BlockedWrites() == 0 && w.Err() == nil && time.Now().Before(end); {
				time.Sleep(time.Millisecond)
			}
			fz.Crash(arng.Uint64())
			fz.Thaw(0)
			pwg.Wait()
			_ = w.Close(ctx)
			e.count(func(tt *tortureTotals, sc *scheduleCounters) {
				tt.crashes++
				if fz.DyingWrites() > 0 {
					sc.crashPending++
					e.run.crashPending.Add(1)
				}
			})
		default: // zombie: frozen mid-turn, back at one of the thaw moments
			e.zombie(w, fz)
			// The thawed process goes on where it was: it syncs, as it
			// did every few milliseconds before the freeze. A Sync that
			// succeeds now promises every later tick is above it (I4).
			for range 3 {
				if tk, err := w.Sync(ctx); err == nil {
					e.hist.recordSync(tk)
				}
			}
			pwg.Wait()
			_ = w.Close(ctx)
		}
		if err := w.Err(); err != nil && errors.Is(err, sl.ErrInvariant) {
			t.Errorf("actor %d: writer: %v", a, err)
		}
		if sw != nil {
			e.count(func(_ *tortureTotals, sc *scheduleCounters) { sc.sharedRaces += sw.Stats().LostRaces })
		} else {
			e.run.garbageSeen.Add(ex.Stats().GarbageSlots)
		}
	}
}

// zombie freezes the actor's process with its producers still appending and
// thaws it at the next thaw moment. While frozen, this actor starts no new
// turn; the others take the pchannel meanwhile.
func (e *actorEnv) zombie(w tortureWriter, fz *objstoretest.Process) {
	tm := e.tm
	fz.Freeze()
	// Let the producers' next PUTs reach the freeze: a zombie with several
	// PUTs in flight can put some inside the next holder's window.
	for end := time.Now().Add(4 * tm.put); fz.BlockedWrites() < 2 && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	moment := thawCycle[(e.run.thaws.Add(1)-1)%int64(len(thawCycle))]
	wait := 8 * tm.ttl // the longest a zombie waits for a takeover
	switch moment {
	case thawBeforeTakeover:
		time.Sleep(tm.ttl + tm.margin + tm.skew)
	case thawDuringFence, thawAfterFence:
		fw := e.watch.waitFence(w.Term(), moment == thawDuringFence)
		select {
		case <-fw.go_:
		case <-time.After(wait):
			e.watch.cancel(fw)
		}
		defer close(fw.done)
	case thawLate:
		time.Sleep(2*tm.ttl + tm.margin)
	}
	calls, puts := fz.Thaw(4 * tm.put)
	if testing.Verbose() {
		e.t.Logf("zombie of term %d thawed %s with %d slot PUTs (%d calls) in flight", w.Term(), thawNames[moment], puts, calls)
	}
	e.count(func(tt *tortureTotals, sc *scheduleCounters) {
		tt.zombies++
		sc.thaws[moment]++
		sc.putsInFlight += puts
		sc.callsFrozen += calls
	})
}

// leaseLive reports whether the pchannel's lease has a live holder now, by
// the actor's clock: a takeover turn that finds one takes it over.
func (e *actorEnv) leaseLive(ctx context.Context, leases *coordinator.Leases, now time.Time) bool {
	l, err := leases.Describe(ctx, e.pch)
	return err == nil && !l.Released && !(l.Shared && l.OpenAt > 0) && now.Before(l.Expires.Add(e.leaseCfg.Margin))
}

// clock is an actor's clock for one turn: off by a skew within ±skew, which
// jumps once, at a random moment, to another value within the bound.
func (e *actorEnv) clock(rng *rand.Rand) func() time.Time {
	skew := e.tm.skew
	pick := func() time.Duration { return time.Duration(rng.Int64N(int64(2*skew+1))) - skew }
	before, after := pick(), pick()
	jumpAt := time.Now().Add(time.Duration(rng.Int64N(int64(e.tm.round / 4))))
	var jumped atomic.Bool
	return func() time.Time {
		now := time.Now()
		if now.Before(jumpAt) {
			return now.Add(before)
		}
		if !jumped.Swap(true) {
			e.count(func(_ *tortureTotals, sc *scheduleCounters) { sc.clockJumps++ })
		}
		return now.Add(after)
	}
}

func (e *actorEnv) count(f func(*tortureTotals, *scheduleCounters)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(&e.totals, &e.schedule)
}

// drain waits for every late write of the round's fault stores and adds
// their counters.
func (e *actorEnv) drain() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range e.faults {
		f.Drain()
		s := f.Stats()
		for op, n := range s.Calls {
			e.totals.storeOps += n
			e.totals.faults += s.Injected[op]
		}
		e.totals.faults += s.LostReplies + s.DelayedWrites
		e.schedule.lateApplied += s.DelayedApplied + s.DelayedRejected
		e.schedule.lateRefused += s.DelayedRejected
	}
}
