package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// DefaultRequestTimeout bounds each GET and CAS request of a lease operation
// (docs/protocol.md, "Parameters": R for CAS/GET).
const DefaultRequestTimeout = time.Second

// Leases hands out pchannel leases over lease records in an object store
// (see the package documentation). It implements segmentlog.Leases.
//
// Leases is safe for concurrent use, and any number of Leases values, in any
// number of processes, may serve the same store at once: every change is a
// compare-and-swap on the record, decided afresh from what was read. It keeps
// no state between calls.
type Leases struct {
	store   objstore.Store
	layout  segmentlog.Layout
	cfg     LeaseConfig
	now     func() time.Time
	timeout time.Duration
	codec   codec[Lease]
}

var _ segmentlog.Leases = (*Leases)(nil)

// Option configures Leases.
type Option func(*Leases)

// WithClock sets the clock lease times are read from. Default time.Now.
func WithClock(now func() time.Time) Option { return func(l *Leases) { l.now = now } }

// WithRequestTimeout bounds each store request (GET, CAS) of an operation.
// Default DefaultRequestTimeout (1s). It must be below the lease margin.
func WithRequestTimeout(d time.Duration) Option { return func(l *Leases) { l.timeout = d } }

// NewLeases returns a lease service over store. Zero fields of cfg take their
// defaults (LeaseConfig).
func NewLeases(store objstore.Store, layout segmentlog.Layout, cfg LeaseConfig, opts ...Option) (*Leases, error) {
	l := &Leases{store: store, layout: layout, cfg: cfg.withDefaults(), now: time.Now, timeout: DefaultRequestTimeout}
	for _, o := range opts {
		o(l)
	}
	if store == nil {
		return nil, errors.New("coordinator: new leases: nil store")
	}
	if l.now == nil {
		return nil, errors.New("coordinator: new leases: nil clock")
	}
	if err := l.cfg.Validate(); err != nil {
		return nil, err
	}
	// docs/protocol.md, "Parameters": skew + drift·TTL + R ≤ m.
	if l.timeout <= 0 || l.timeout >= l.cfg.Margin {
		return nil, fmt.Errorf("coordinator: new leases: request timeout %v must be in (0, margin %v)", l.timeout, l.cfg.Margin)
	}
	l.codec = codec[Lease]{
		kind:    "lease",
		key:     layout.Lease,
		prefix:  layout.LeasePrefix(),
		encode:  encodeLease,
		decode:  decodeLease,
		version: func(rec Lease) uint64 { return rec.Version },
	}
	return l, nil
}

// Acquire takes the lease of pchannel for holder. nonce must be fresh for
// every new attempt to take the lease (a UUIDv7); a retry of the same attempt
// with the same nonce and holder returns the same term. A live lease of
// another holder is never taken over: the error is then a *HeldError
// (errors.Is ErrLeaseHeld).
func (l *Leases) Acquire(ctx context.Context, pchannel, holder, nonce string) (segmentlog.LeaseGrant, error) {
	return l.acquire(ctx, "acquire", pchannel, holder, nonce, decideAcquire)
}

type acquireDecision func(cur *Lease, pchannel, holder, nonce string, now time.Time, cfg LeaseConfig) (Lease, error)

func (l *Leases) acquire(ctx context.Context, what, pchannel, holder, nonce string, decide acquireDecision) (segmentlog.LeaseGrant, error) {
	sentAt := l.now()
	if err := segmentlog.ValidateName("pchannel", pchannel); err != nil {
		return segmentlog.LeaseGrant{}, fmt.Errorf("coordinator: %s: %w", what, err)
	}
	if holder == "" || nonce == "" {
		return segmentlog.LeaseGrant{}, fmt.Errorf("coordinator: %s %s: empty holder or nonce", what, pchannel)
	}
	rec, err := l.update(ctx, pchannel, func(cur *Lease, now time.Time) (Lease, error) {
		return decide(cur, pchannel, holder, nonce, now, l.cfg)
	})
	if err != nil {
		return segmentlog.LeaseGrant{}, fmt.Errorf("coordinator: %s %s for %q: %w", what, pchannel, holder, err)
	}
	return grantOf(rec, sentAt, l.cfg), nil
}

// Takeover is Acquire that also takes a live lease (docs/protocol.md,
// Acquire 4): for a coordinator move, or a restarted node taking back the
// pchannels its previous incarnation held. The old holder's next append
// fails with segmentlog.ErrFenced; nothing it acknowledged is lost.
func (l *Leases) Takeover(ctx context.Context, pchannel, holder, nonce string) (segmentlog.LeaseGrant, error) {
	return l.acquire(ctx, "take over", pchannel, holder, nonce, decideTakeover)
}

// OpenShared joins the shared term of pchannel (docs/protocol.md, "Shared
// terms"): it adopts the open shared term (no write), or takes the lease
// over with a new shared term that the caller must open (grant.OpenAt is
// then 0 and grant.Nonce is nonce). While another writer is opening one it
// fails with a *HeldError.
func (l *Leases) OpenShared(ctx context.Context, pchannel, holder, nonce string) (segmentlog.LeaseGrant, error) {
	return l.acquire(ctx, "open shared term of", pchannel, holder, nonce, decideOpenShared)
}

// MarkOpen records openAt, the first data slot after the fence window its
// opener placed, in the shared term (term, nonce): from then on writers
// adopt the term.
func (l *Leases) MarkOpen(ctx context.Context, pchannel string, term uint64, nonce string, openAt uint64) error {
	_, err := l.update(ctx, pchannel, func(cur *Lease, now time.Time) (Lease, error) {
		if cur == nil {
			return Lease{}, fmt.Errorf("%w: %w", ErrLeaseLost, ErrNoLease)
		}
		return decideMarkOpen(*cur, term, nonce, openAt)
	})
	if err != nil {
		return fmt.Errorf("coordinator: open shared term %d of %s at %d: %w", term, pchannel, openAt, err)
	}
	return nil
}

// Renew extends the lease of (term, nonce) by a TTL from now and raises its
// TickMax. It fails with ErrLeaseLost once another holder has acquired the
// pchannel or the lease was released. A renew that comes after the lease
// expired still succeeds if nobody acquired meanwhile.
func (l *Leases) Renew(ctx context.Context, pchannel string, term uint64, nonce string) (segmentlog.LeaseGrant, error) {
	sentAt := l.now()
	if err := segmentlog.ValidateName("pchannel", pchannel); err != nil {
		return segmentlog.LeaseGrant{}, fmt.Errorf("coordinator: renew: %w", err)
	}
	rec, err := l.update(ctx, pchannel, func(cur *Lease, now time.Time) (Lease, error) {
		if cur == nil {
			return Lease{}, fmt.Errorf("%w: %w", ErrLeaseLost, ErrNoLease)
		}
		return decideRenew(*cur, term, nonce, now, l.cfg)
	})
	if err != nil {
		return segmentlog.LeaseGrant{}, fmt.Errorf("coordinator: renew %s term %d: %w", pchannel, term, err)
	}
	return grantOf(rec, sentAt, l.cfg), nil
}

// Release gives up the lease of (term, nonce), recording tail (the holder's
// ack frontier: every slot below it is filled) and lastTick (the highest
// timetick it used). The next acquire is granted at once. Releasing twice is
// not an error; a release by anyone but the holder of (term, nonce) fails
// with ErrLeaseLost.
func (l *Leases) Release(ctx context.Context, pchannel string, term uint64, nonce string, tail, lastTick uint64) error {
	if err := segmentlog.ValidateName("pchannel", pchannel); err != nil {
		return fmt.Errorf("coordinator: release: %w", err)
	}
	_, err := l.update(ctx, pchannel, func(cur *Lease, now time.Time) (Lease, error) {
		if cur == nil {
			return Lease{}, fmt.Errorf("%w: %w", ErrLeaseLost, ErrNoLease)
		}
		return decideRelease(*cur, term, nonce, tail, lastTick, now)
	})
	if err != nil {
		return fmt.Errorf("coordinator: release %s term %d: %w", pchannel, term, err)
	}
	return nil
}

// Describe returns the lease record of pchannel; ErrNoLease if it has none.
func (l *Leases) Describe(ctx context.Context, pchannel string) (Lease, error) {
	if err := segmentlog.ValidateName("pchannel", pchannel); err != nil {
		return Lease{}, fmt.Errorf("coordinator: describe: %w", err)
	}
	rec, err := describeRecord(ctx, l.records(), l.codec, pchannel)
	switch {
	case err != nil:
		return Lease{}, fmt.Errorf("coordinator: describe %s: %w", pchannel, err)
	case rec == nil:
		return Lease{}, fmt.Errorf("coordinator: describe %s: %w", pchannel, ErrNoLease)
	}
	return *rec, nil
}

// List returns every lease record, in pchannel order.
func (l *Leases) List(ctx context.Context) ([]Lease, error) {
	prefix := l.layout.LeasePrefix()
	var names []string
	err := l.store.List(ctx, prefix, "", func(a objstore.Attrs) error {
		name, ok := strings.CutSuffix(strings.TrimPrefix(a.Key, prefix), ".json")
		if ok && segmentlog.ValidateName("pchannel", name) == nil && l.layout.Lease(name) == a.Key {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("coordinator: list leases: %w", err)
	}
	out := make([]Lease, 0, len(names))
	for _, p := range names {
		rec, err := l.Describe(ctx, p)
		if errors.Is(err, ErrNoLease) {
			continue // records are never deleted; tolerate a store that did
		}
		if err != nil {
			return nil, fmt.Errorf("coordinator: list leases: %w", err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// update changes the record of pchannel by compare-and-swap (updateRecord,
// over cas.Update): read, decide, write conditional on the version read,
// until a decision is stored, needs no write, or fails. A write whose reply
// is lost is never resent blindly: a later read that finds its exact bytes
// takes it as landed, else the next round decides again from what it read.
func (l *Leases) update(ctx context.Context, pchannel string, decide func(cur *Lease, now time.Time) (Lease, error)) (Lease, error) {
	rec, _, err := updateRecord(ctx, l.records(), l.codec, pchannel, decide)
	return rec, err
}

// records is the store with the timeout and clock of lease operations.
func (l *Leases) records() records { return records{store: l.store, timeout: l.timeout, now: l.now} }
