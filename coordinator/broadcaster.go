package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cairnlog/cairn/infra/backoff"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// BroadcastConfig configures a Broadcaster. Zero fields take defaults.
type BroadcastConfig struct {
	// Layout names the objects; it must equal the registry's.
	Layout segmentlog.Layout
	// LockTTL is how long a run holds its resource locks between renewals.
	// Default 10s.
	LockTTL time.Duration
	// LockMargin is the safety margin m of the locks: a lock is taken over
	// only margin after its expiry, and its holder stops margin before.
	// Default 2.5s; below LockTTL/2.
	LockMargin time.Duration
	// AttemptTTL bounds one attempt at a copy: the copy carries the
	// deadline min(send + AttemptTTL, lock deadline), after which a writer
	// refuses it. Default 5s.
	AttemptTTL time.Duration
	// SyncPoll is how often an AckSync task reads the flush checkpoints it
	// waits for. Default 1s.
	SyncPoll time.Duration
	// TombstoneRetention is how long a finished task's record is kept
	// before Collect deletes it; a resubmission within it returns the
	// task. Default 1h; at most segmentlog.BroadcastRetention.
	TombstoneRetention time.Duration
	// RequestTimeout bounds each store request. Default 1s.
	RequestTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger: default slog.Default().
	Logger *slog.Logger
}

func (c BroadcastConfig) withDefaults() BroadcastConfig {
	if c.LockTTL == 0 {
		c.LockTTL = 10 * time.Second
	}
	if c.LockMargin == 0 {
		c.LockMargin = 2500 * time.Millisecond
	}
	if c.AttemptTTL == 0 {
		c.AttemptTTL = 5 * time.Second
	}
	if c.SyncPoll == 0 {
		c.SyncPoll = time.Second
	}
	if c.TombstoneRetention == 0 {
		c.TombstoneRetention = time.Hour
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports a configuration that breaks the relations the locks
// rely on.
func (c BroadcastConfig) Validate() error {
	switch {
	case c.LockTTL <= 0 || c.LockMargin <= 0 || 2*c.LockMargin >= c.LockTTL:
		return fmt.Errorf("coordinator: broadcast config: want 0 < 2 × LockMargin (%v) < LockTTL (%v)", c.LockMargin, c.LockTTL)
	case c.AttemptTTL <= 0 || c.SyncPoll <= 0 || c.RequestTimeout <= 0:
		return errors.New("coordinator: broadcast config: AttemptTTL, SyncPoll and RequestTimeout must be positive")
	case c.TombstoneRetention <= 0 || c.TombstoneRetention > segmentlog.BroadcastRetention:
		return fmt.Errorf("coordinator: broadcast config: TombstoneRetention %v must be in (0, %v]", c.TombstoneRetention, segmentlog.BroadcastRetention)
	}
	return nil
}

// giveUpAfter is how long after a copy's first attempt a run may still send
// it: the writers remember a landed copy for segmentlog.BroadcastRetention
// from when it landed, which is after the first attempt.
const giveUpAfter = segmentlog.BroadcastRetention - time.Hour

// Broadcaster runs broadcast tasks (docs/protocol.md, "Broadcast and
// coordinator"): a task is persisted as pending before anything is
// appended; a run takes the task's resource locks, appends one copy per
// vchannel through the ControlWAL, records each copy's position in the
// task, releases the locks, waits for the flush checkpoints if the task
// asks for AckSync, and marks the task done. A run that dies anywhere is
// resumed by Run or Resume, in this process or another: the writers
// recognise a copy sent again (segmentlog.BroadcastRetention), so each
// vchannel gets one copy however many runs, instances and crashes there
// were.
//
// A Broadcaster is safe for concurrent use; any number of them may serve
// one store.
type Broadcaster struct {
	cfg   BroadcastConfig
	store objstore.Store
	rec   records
	bc    codec[Broadcast]
	lc    codec[Lock]
	reg   *Registry
	wal   ControlWAL
	log   *slog.Logger

	submitted chan struct{} // Submitted

	mu    sync.Mutex
	tasks *mirror[Broadcast]
}

// NewBroadcaster returns a broadcaster that binds targets through reg and
// appends through wal.
func NewBroadcaster(cfg BroadcastConfig, store objstore.Store, reg *Registry, wal ControlWAL) (*Broadcaster, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || reg == nil || wal == nil {
		return nil, errors.New("coordinator: new broadcaster: nil store, registry or ControlWAL")
	}
	if reg.cfg.Layout != cfg.Layout {
		return nil, fmt.Errorf("coordinator: new broadcaster: layout %+v differs from the registry's %+v", cfg.Layout, reg.cfg.Layout)
	}
	return &Broadcaster{
		cfg:       cfg,
		store:     store,
		rec:       records{store: store, timeout: cfg.RequestTimeout, now: cfg.Now},
		bc:        broadcastCodec(cfg.Layout),
		lc:        lockCodec(cfg.Layout),
		reg:       reg,
		wal:       wal,
		log:       cfg.Logger.With("component", "broadcaster"),
		tasks:     newMirror(broadcastCodec(cfg.Layout)),
		submitted: make(chan struct{}, 1),
	}, nil
}

// Submitted receives after this Broadcaster persisted a new task (one
// pending signal at most; Submit never waits for a receiver): a resume
// loop in the same process that slowed down while no task was pending
// looks again at once.
func (b *Broadcaster) Submitted() <-chan struct{} { return b.submitted }

// Pending reports whether the tasks as last listed (List, Resume, Collect)
// included one not finished. It sends no request.
func (b *Broadcaster) Pending() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.tasks.all() {
		if !t.finished() {
			return true
		}
	}
	return false
}

// Submit persists req as a pending task and returns it, without appending
// anything. Submitting an ID again returns its task as it is now (pending,
// done or failed) if the content is the same, and fails with
// ErrBroadcastConflict if not. Every vchannel must exist and be active.
func (b *Broadcaster) Submit(ctx context.Context, req BroadcastRequest) (Broadcast, error) {
	t, _, err := b.submit(ctx, req)
	return t, err
}

// submit is Submit; checked says this call found every target active.
func (b *Broadcaster) submit(ctx context.Context, req BroadcastRequest) (_ Broadcast, checked bool, _ error) {
	if err := req.Validate(); err != nil {
		return Broadcast{}, false, fmt.Errorf("coordinator: broadcast %q: %w", req.ID, err)
	}
	if cur, err := describeRecord(ctx, b.rec, b.bc, req.ID); err != nil {
		return Broadcast{}, false, fmt.Errorf("coordinator: broadcast %s: %w", req.ID, err)
	} else if cur != nil {
		t, err := decideSubmit(cur, req, nil, b.cfg.Now())
		return t, false, wrapBroadcast(req.ID, err)
	}
	binding := make(map[string]string, len(req.VChannels))
	for _, v := range req.VChannels {
		rec, err := b.reg.Describe(ctx, v)
		if err != nil {
			return Broadcast{}, false, fmt.Errorf("coordinator: broadcast %s: %w", req.ID, err)
		}
		if rec.State != VChannelActive {
			return Broadcast{}, false, fmt.Errorf("coordinator: broadcast %s: %w: %s", req.ID, ErrVChannelDropped, v)
		}
		if rec.Created == nil {
			// A copy must not land before the vchannel's create message.
			return Broadcast{}, false, fmt.Errorf("coordinator: broadcast %s: %w: %s has no create message in the WAL yet (call Registry.Create again)",
				req.ID, ErrVChannelNotReady, v)
		}
		binding[v] = rec.PChannel
	}
	t, _, err := updateRecord(ctx, b.rec, b.bc, req.ID, func(cur *Broadcast, now time.Time) (Broadcast, error) {
		return decideSubmit(cur, req, binding, now)
	})
	if err != nil {
		return Broadcast{}, false, wrapBroadcast(req.ID, err)
	}
	b.log.Info("broadcast submitted", "id", t.ID, "vchannels", len(t.Targets), "ack", t.Ack)
	select {
	case b.submitted <- struct{}{}:
	default:
	}
	return t, true, nil
}

// Broadcast submits req and runs it to the end: Submit, then Run.
func (b *Broadcaster) Broadcast(ctx context.Context, req BroadcastRequest) (Broadcast, error) {
	t, checked, err := b.submit(ctx, req)
	if err != nil || t.finished() {
		return t, err
	}
	return b.run(ctx, t, true, checked)
}

// Describe returns the task id; ErrNoBroadcast if there is none.
func (b *Broadcaster) Describe(ctx context.Context, id string) (Broadcast, error) {
	if err := segmentlog.ValidateName("broadcast ID", id); err != nil {
		return Broadcast{}, fmt.Errorf("coordinator: describe broadcast: %w", err)
	}
	t, err := describeRecord(ctx, b.rec, b.bc, id)
	switch {
	case err != nil:
		return Broadcast{}, fmt.Errorf("coordinator: describe broadcast %s: %w", id, err)
	case t == nil:
		return Broadcast{}, fmt.Errorf("coordinator: describe broadcast: %w: %s", ErrNoBroadcast, id)
	}
	return *t, nil
}

// List returns every task (pending, done or failed and not yet collected)
// in ID order.
func (b *Broadcaster) List(ctx context.Context) ([]Broadcast, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.tasks.refreshRetrying(ctx, b.rec); err != nil {
		return nil, fmt.Errorf("coordinator: list broadcasts: %w", err)
	}
	return b.tasks.all(), nil
}

// Run drives task id to its end and returns it done. It fails with
// ErrBroadcastBusy while another run holds the task's locks, with
// ErrBroadcastFailed if the task failed, and with ctx's error if ctx ends
// first (the task stays pending; any later Run resumes it).
func (b *Broadcaster) Run(ctx context.Context, id string) (Broadcast, error) {
	t, err := b.Describe(ctx, id)
	if err != nil {
		return Broadcast{}, err
	}
	return b.run(ctx, t, true, false)
}

// run drives task t (as last read) on; with waitSync false a sync-up task
// whose checkpoints have not passed its copies is left pending after one
// look, with no error. checked says Submit has just found every target
// active, in this call: the run does not read the vchannels again.
func (b *Broadcaster) run(ctx context.Context, t Broadcast, waitSync, checked bool) (Broadcast, error) {
	var err error
	if !t.finished() && t.unsent() {
		if t, err = b.appendAll(ctx, t, checked); err != nil {
			return t, err
		}
	}
	if !t.finished() && t.Ack == AckSync {
		synced := false
		if t, synced, err = b.syncAll(ctx, t, waitSync); err != nil || !synced {
			return t, err
		}
	}
	id := t.ID
	if !t.finished() {
		if t, err = b.update(ctx, id, func(cur *Broadcast, now time.Time) (Broadcast, error) {
			return decideFinish(cur, id, "", now)
		}); err != nil {
			return t, err
		}
		b.log.Info("broadcast done", "id", id, "vchannels", len(t.Targets), "ack", t.Ack)
	}
	if t.State == BroadcastFailed {
		return t, fmt.Errorf("coordinator: broadcast %s: %w: %s", id, ErrBroadcastFailed, t.Error)
	}
	return t, nil
}

// resumeParallel bounds the tasks one Resume runs at once.
const resumeParallel = 8

// Resume runs every pending task once, a few at a time, and returns how
// many it finished. A task another run holds is left to it; a sync-up task
// whose flush checkpoints have not passed its copies is looked at once and
// left for the next call, so one slow task never holds up the others. The
// coordinator loop (`cairn serve`, the maintenance function) calls it.
func (b *Broadcaster) Resume(ctx context.Context) (int, error) {
	all, err := b.List(ctx)
	if err != nil {
		return 0, err
	}
	var (
		mu   sync.Mutex
		n    int
		errs []error
		g    errgroup.Group
	)
	g.SetLimit(resumeParallel)
	for _, t := range all {
		if t.finished() || ctx.Err() != nil {
			continue
		}
		g.Go(func() error {
			got, err := b.run(ctx, t, false, false)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && got.State == BroadcastDone:
				n++
			case err == nil, errors.Is(err, ErrBroadcastBusy), ctx.Err() != nil:
			default:
				errs = append(errs, err)
			}
			return nil
		})
	}
	g.Wait()
	if ctx.Err() != nil {
		return n, ctx.Err()
	}
	return n, errors.Join(errs...)
}

// ResumeWithin is Resume cut at budget: a task still running when the
// budget ends stays pending for the next call, and that is not an error.
// The periodic loops (`cairn serve`, the maintenance function) call it.
func (b *Broadcaster) ResumeWithin(ctx context.Context, budget time.Duration) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	n, err := b.Resume(rctx)
	if err != nil && rctx.Err() != nil && ctx.Err() == nil {
		b.log.Info("broadcasts still pending when the round's budget ran out; the next round resumes them", "budget", budget)
		return n, nil
	}
	return n, err
}

// Collect deletes the records of tasks finished more than
// TombstoneRetention ago and returns how many it deleted.
func (b *Broadcaster) Collect(ctx context.Context) (int, error) {
	all, err := b.List(ctx)
	if err != nil {
		return 0, err
	}
	now := b.cfg.Now()
	var n int
	for _, t := range all {
		if !t.finished() || now.Sub(t.FinishedAt) < b.cfg.TombstoneRetention {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
		err := b.store.Delete(dctx, b.bc.key(t.ID))
		cancel()
		if err != nil && !errors.Is(err, objstore.ErrNotFound) {
			return n, fmt.Errorf("coordinator: collect broadcast %s: %w", t.ID, err)
		}
		n++
	}
	return n, nil
}

// run is one run's hold on a task's resource locks.
type run struct {
	t       Broadcast
	nonce   string
	held    []string
	checked bool // Submit found every target active in this call

	mu       sync.Mutex // guards deadline; held while the locks are renewed
	deadline time.Time  // until which every lock is surely held
}

// sendParallel bounds the copies of one task sent at once.
const sendParallel = 16

// appendAll appends the copies not appended yet, holding the task's locks:
// one CAS of the task starts the targets never sent (stamping their first
// attempt, or skipping a dropped vchannel), the copies go out a few at a
// time, and one CAS records where they landed. A run that dies before
// recording loses nothing: the next run sends the copies again and the
// writers answer with the first copies' positions.
func (b *Broadcaster) appendAll(ctx context.Context, t Broadcast, checked bool) (Broadcast, error) {
	r := &run{t: t, nonce: uuid.Must(uuid.NewV7()).String(), checked: checked}
	err := b.lockAll(ctx, r)
	defer b.unlockAll(context.WithoutCancel(ctx), r)
	if err != nil {
		return r.t, err
	}
	if err := b.start(ctx, r); err != nil || r.t.finished() {
		return r.t, err
	}
	var pending []BroadcastTarget
	for _, tg := range r.t.Targets {
		if tg.unsent() {
			pending = append(pending, tg)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		marks   = map[string]WALMark{}
		refused string
		errs    []error
		g       errgroup.Group
	)
	g.SetLimit(sendParallel)
	for _, tg := range pending {
		g.Go(func() error {
			mark, why, err := b.send(sctx, r, tg)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && why == "":
				marks[tg.VChannel] = mark
				return nil
			case why != "":
				refused = why
			case sctx.Err() == nil || ctx.Err() != nil:
				errs = append(errs, err)
			}
			cancel() // one copy that cannot be sent stops the others
			return nil
		})
	}
	g.Wait()
	if len(marks) > 0 {
		id := r.t.ID
		t, rerr := b.update(context.WithoutCancel(ctx), id, func(cur *Broadcast, _ time.Time) (Broadcast, error) {
			return decideTargets(cur, id, func(tg *BroadcastTarget) bool {
				m, ok := marks[tg.VChannel]
				if !ok || tg.Appended != nil {
					return false
				}
				tg.Appended = &m
				return true
			})
		})
		if rerr != nil {
			return r.t, rerr
		}
		r.t = t
	}
	if refused != "" {
		return b.fail(ctx, r, refused)
	}
	if ctx.Err() != nil {
		return r.t, ctx.Err()
	}
	return r.t, errors.Join(errs...)
}

// start stamps the first attempt of every target never sent, and skips a
// target whose vchannel was dropped before it (one CAS for all). It fails
// the task if a copy was first sent too long ago to be sent again safely.
func (b *Broadcaster) start(ctx context.Context, r *run) error {
	dropped := map[string]bool{}
	for _, tg := range r.t.Targets {
		if r.checked || !tg.FirstAttempt.IsZero() || tg.Skipped != "" || tg.Appended != nil {
			continue
		}
		rec, err := b.reg.Describe(ctx, tg.VChannel)
		switch {
		case errors.Is(err, ErrNoVChannel):
			dropped[tg.VChannel] = true
		case err != nil:
			return err
		case rec.State != VChannelActive:
			dropped[tg.VChannel] = true
		}
	}
	id, now := r.t.ID, b.cfg.Now()
	t, err := b.update(ctx, id, func(cur *Broadcast, _ time.Time) (Broadcast, error) {
		return decideTargets(cur, id, func(tg *BroadcastTarget) bool {
			switch {
			case !tg.FirstAttempt.IsZero() || tg.Skipped != "" || tg.Appended != nil:
				return false
			case dropped[tg.VChannel]:
				tg.Skipped = "dropped"
			default:
				tg.FirstAttempt = now
			}
			return true
		})
	})
	if err != nil {
		return err
	}
	r.t = t
	for _, tg := range t.Targets {
		if tg.unsent() && now.Sub(tg.FirstAttempt) > giveUpAfter {
			_, err := b.fail(ctx, r, fmt.Sprintf("copy on %s first sent %s: too long ago to send again without risking a second copy",
				tg.VChannel, tg.FirstAttempt.Format(time.RFC3339)))
			return err
		}
	}
	return nil
}

// send sends the copy of target tg until a writer acknowledges it. It
// returns why when a writer refuses the copy for good (nothing written;
// sending it again would fail the same way for a day, holding the locks),
// and an error when the run must stop (ctx, lost locks).
func (b *Broadcaster) send(ctx context.Context, r *run, tg BroadcastTarget) (WALMark, string, error) {
	pauses := retryBackoff.Start()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := pauses.Wait(ctx); err != nil {
				return WALMark{}, "", err
			}
		}
		deadline, err := b.keepLocks(ctx, r)
		if err != nil {
			return WALMark{}, "", err
		}
		msg := segmentlog.Message{Type: segmentlog.TypeBroadcast, VChannel: tg.VChannel, BroadcastID: r.t.ID,
			Payload: r.t.Payload, Properties: maps.Clone(r.t.Properties)}
		if msg.Properties == nil {
			msg.Properties = map[string]string{}
		}
		copyDeadline := b.cfg.Now().Add(b.cfg.AttemptTTL)
		if deadline.Before(copyDeadline) {
			copyDeadline = deadline
		}
		msg.Properties[segmentlog.BroadcastDeadlineProperty] = segmentlog.FormatBroadcastDeadline(copyDeadline)
		actx, cancel := context.WithDeadline(ctx, deadline)
		acks, err := b.wal.AppendControl(actx, tg.PChannel, msg)
		cancel()
		switch {
		case err == nil:
			return markOf(acks[0]), "", nil
		case ctx.Err() != nil:
			return WALMark{}, "", ctx.Err()
		case errors.Is(err, segmentlog.ErrInvalidMessage), errors.Is(err, segmentlog.ErrTooLarge), errors.Is(err, segmentlog.ErrInvalidName):
			return WALMark{}, fmt.Sprintf("copy on %s refused: %v", tg.VChannel, err), nil
		}
		b.log.Warn("broadcast: copy not acknowledged, retrying", "id", r.t.ID, "vchannel", tg.VChannel, "pchannel", tg.PChannel, "err", err)
	}
}

// fail marks the run's task failed with reason.
func (b *Broadcaster) fail(ctx context.Context, r *run, reason string) (Broadcast, error) {
	id := r.t.ID
	t, err := b.update(context.WithoutCancel(ctx), id, func(cur *Broadcast, now time.Time) (Broadcast, error) {
		return decideFinish(cur, id, reason, now)
	})
	if err != nil {
		return r.t, err
	}
	r.t = t
	return t, nil
}

// syncAll waits until the flush checkpoint of every appended copy's
// pchannel has passed it (with wait false it looks once), and reports
// whether every copy is synced. Each look reads each pchannel's checkpoint
// once and records what passed with one CAS.
func (b *Broadcaster) syncAll(ctx context.Context, t Broadcast, wait bool) (Broadcast, bool, error) {
	id := t.ID
	for {
		flushed := map[string]uint64{} // pchannel → checkpoint c
		waiting := false
		for _, tg := range t.Targets {
			if tg.Appended == nil || tg.Synced {
				continue
			}
			c, ok := flushed[tg.PChannel]
			if !ok {
				gctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
				cp, _, err := segmentlog.ReadCheckpoint(gctx, b.store, b.cfg.Layout, tg.PChannel)
				cancel()
				if err == nil {
					c = cp.C
				}
				flushed[tg.PChannel] = c // 0 on an error: looked at again next time
			}
			waiting = waiting || c <= tg.Appended.ID.Offset
		}
		if slices.ContainsFunc(t.Targets, func(tg BroadcastTarget) bool {
			return tg.Appended != nil && !tg.Synced && flushed[tg.PChannel] > tg.Appended.ID.Offset
		}) {
			var err error
			if t, err = b.update(ctx, id, func(cur *Broadcast, _ time.Time) (Broadcast, error) {
				return decideTargets(cur, id, func(tg *BroadcastTarget) bool {
					if tg.Appended == nil || tg.Synced || flushed[tg.PChannel] <= tg.Appended.ID.Offset {
						return false
					}
					tg.Synced = true
					return true
				})
			}); err != nil {
				return t, false, err
			}
		}
		if !waiting || !wait {
			return t, !waiting, nil
		}
		if err := backoff.Sleep(ctx, b.cfg.SyncPoll); err != nil {
			return t, false, err
		}
	}
}

func (b *Broadcaster) update(ctx context.Context, id string, decide func(*Broadcast, time.Time) (Broadcast, error)) (Broadcast, error) {
	t, _, err := updateRecord(ctx, b.rec, b.bc, id, decide)
	return t, wrapBroadcast(id, err)
}

// lockAll takes the task's locks in name order, or none: if one is held by
// another run it fails with ErrBroadcastBusy, and unlockAll lets go of
// those it took (no run waits while holding a lock, so runs cannot
// deadlock).
func (b *Broadcaster) lockAll(ctx context.Context, r *run) error {
	sent := b.cfg.Now()
	for _, res := range r.t.Resources {
		if err := b.lockOne(ctx, r, res, false); err != nil {
			return err
		}
		r.held = append(r.held, res)
	}
	r.deadline = sent.Add(b.cfg.LockTTL - b.cfg.LockMargin)
	return nil
}

// keepLocks returns the deadline until which the run surely holds its
// locks, renewing them first once less than half of LockTTL is left: the
// deadline is then the send time of the first renewal plus LockTTL minus
// LockMargin. A lock lost to another run fails with ErrBroadcastBusy. Safe
// for the run's concurrent sends.
func (b *Broadcaster) keepLocks(ctx context.Context, r *run) (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.deadline.Sub(b.cfg.Now()) > b.cfg.LockTTL/2 {
		return r.deadline, nil
	}
	sent := b.cfg.Now()
	for _, res := range r.held {
		if err := b.lockOne(ctx, r, res, true); err != nil {
			return time.Time{}, err
		}
	}
	r.deadline = sent.Add(b.cfg.LockTTL - b.cfg.LockMargin)
	return r.deadline, nil
}

// lockOne takes or (renew) keeps lock res for the run. A lapsed lock of
// another task is taken only if that task has not started appending or has
// finished (see lock.go).
func (b *Broadcaster) lockOne(ctx context.Context, r *run, res string, renew bool) error {
	id := r.t.ID
	var yield *Lock
	if !renew {
		cur, err := describeRecord(ctx, b.rec, b.lc, res)
		if err != nil {
			return fmt.Errorf("coordinator: broadcast %s: lock %s: %w", id, res, err)
		}
		if cur != nil && !cur.Released && cur.Holder != "" && cur.Holder != id && cur.free(b.cfg.Now(), b.cfg.LockMargin) {
			other, err := describeRecord(ctx, b.rec, b.bc, cur.Holder)
			if err != nil {
				return fmt.Errorf("coordinator: broadcast %s: lock %s: read holder %s: %w", id, res, cur.Holder, err)
			}
			if other == nil || other.finished() || !other.started() {
				yield = cur
			}
		}
	}
	_, _, err := updateRecord(ctx, b.rec, b.lc, res, func(cur *Lock, now time.Time) (Lock, error) {
		if renew && (cur == nil || cur.Holder != id || cur.Nonce != r.nonce || cur.Released) {
			return Lock{}, fmt.Errorf("%w: %s taken over", ErrLockHeld, res)
		}
		return decideLock(cur, res, id, r.nonce, b.cfg.LockTTL, b.cfg.LockMargin, now, yield)
	})
	switch {
	case errors.Is(err, ErrLockHeld):
		return fmt.Errorf("coordinator: broadcast %s: %w (%w)", id, ErrBroadcastBusy, err)
	case err != nil:
		return fmt.Errorf("coordinator: broadcast %s: lock %s: %w", id, res, err)
	}
	return nil
}

// unlockAll releases the locks the run took, unless the run stops between
// the task's first copy and its last: then the locks stay with the task
// (lock.go) and its next run takes them back. A lock that cannot be
// released expires.
func (b *Broadcaster) unlockAll(ctx context.Context, r *run) {
	if r.t.started() && r.t.unsent() && !r.t.finished() {
		return
	}
	for _, res := range r.held {
		if _, _, err := updateRecord(ctx, b.rec, b.lc, res, func(cur *Lock, _ time.Time) (Lock, error) {
			return decideUnlock(cur, r.t.ID, r.nonce)
		}); err != nil {
			b.log.Warn("broadcast: lock not released; it will expire", "id", r.t.ID, "resource", res, "err", err)
		}
	}
}

func wrapBroadcast(id string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("coordinator: broadcast %s: %w", id, err)
}
