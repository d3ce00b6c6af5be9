package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors of the lease service. Callers test with errors.Is (and
// errors.As for *HeldError).
var (
	// ErrLeaseHeld: Acquire found a live lease of another holder. The error
	// is a *HeldError that says who holds it and when to try again. Nothing
	// was written.
	ErrLeaseHeld = errors.New("coordinator: lease held by another holder")
	// ErrLeaseLost: Renew or Release named a (term, nonce) that no longer
	// holds the pchannel: another holder acquired it since, the lease was
	// released, or there is no lease record at all. The caller must stop
	// writing under that term; nothing was written.
	ErrLeaseLost = errors.New("coordinator: lease lost")
	// ErrNoLease: the pchannel has no lease record (it was never acquired).
	// Describe returns it; Renew and Release return it joined with
	// ErrLeaseLost.
	ErrNoLease = errors.New("coordinator: no lease record")
	// ErrNonceReused: Acquire was called with the nonce of the current
	// record, but not as a retry of the acquire that wrote it (another
	// holder, or the lease was released since). An acquire needs a fresh
	// nonce; a late duplicate of an old request must not take the lease for
	// a holder that is no longer listening.
	ErrNonceReused = errors.New("coordinator: acquire nonce already used")
)

// HeldError is the error of an Acquire that found a live lease. It wraps
// ErrLeaseHeld.
type HeldError struct {
	PChannel string
	Holder   string // the current holder
	Term     uint64 // the current term
	// RetryAfter is how long, by the deciding coordinator's clock, until the
	// lease expires plus the safety margin and could be granted (assuming
	// the holder neither renews nor releases it meanwhile).
	RetryAfter time.Duration
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("coordinator: lease of %s held by %q (term %d), retry after %v",
		e.PChannel, e.Holder, e.Term, e.RetryAfter)
}

// Unwrap makes errors.Is(err, ErrLeaseHeld) hold.
func (e *HeldError) Unwrap() error { return ErrLeaseHeld }

// Lease is the lease record of one pchannel, stored as JSON at
// segmentlog.Layout.Lease(pchannel) and updated only by compare-and-swap
// (docs/protocol.md, "Records"). Records are never deleted: a released lease stays
// as a record with Released set, and its term keeps counting.
//
// A Lease is a plain value; copies are independent.
type Lease struct {
	PChannel string `json:"pchannel"`
	// Term is the lease generation: strictly increasing, bumped only by an
	// acquire, by exactly one.
	Term uint64 `json:"term"`
	// Nonce is the acquirer's nonce; exactly one per term.
	Nonce  string `json:"nonce"`
	Holder string `json:"holder"`
	// Expires is when the lease lapses by the clock of the coordinator that
	// last acquired or renewed it; another holder may take it only after
	// Expires plus the safety margin. A release sets it to the release time.
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released"`
	// Tail is the tail hint: every slot below it is filled. It is never above
	// the ack frontier of any holder. Kept across acquires; raised by release.
	Tail uint64 `json:"tail"`
	// TTMax (tt_max): no timetick of this term may exceed it. Raised by
	// acquire and renew, never lowered.
	TTMax uint64 `json:"tt_max"`
	// LastTick is the last timetick a releaser reported as used (kept across
	// acquires); it is at least TickFloor once the lease is released.
	LastTick uint64 `json:"last_tick"`
	// TickFloor: every timetick of this term must be greater. Computed once
	// at acquire from the previous record so that a retried acquire returns
	// the same floor.
	TickFloor uint64 `json:"tick_floor"`
	// Version increases by one on every write of the record.
	Version uint64 `json:"version"`
	// AcquiredAt is when this term was granted (deciding coordinator's clock).
	AcquiredAt time.Time `json:"acquired_at"`
	// Shared marks a shared term (docs/protocol.md, "Shared terms"): every
	// writer that adopts it appends with its term and nonce at the first
	// empty slot. Its holder is the writer that opened it; Expires bounds
	// only the opening.
	Shared bool `json:"shared,omitempty"`
	// OpenAt is a shared term's first data slot (its fence window's end),
	// set once the opener's window landed; 0 while it is being opened.
	OpenAt uint64 `json:"open_at,omitempty"`
}

// leaseFormat is the only lease record format this code reads and writes. A
// change of meaning takes a new number; a format is never changed in place.
const leaseFormat = 1

// leaseRecord is the wire form: the Lease fields plus "format".
type leaseRecord struct {
	Format int `json:"format"`
	Lease
}

// encodeLease returns the stored bytes of l. Times are stored in UTC without
// a monotonic reading, so a record reads back equal to what was written.
func encodeLease(l Lease) ([]byte, error) {
	l.Expires = l.Expires.UTC().Round(0)
	l.AcquiredAt = l.AcquiredAt.UTC().Round(0)
	return json.Marshal(leaseRecord{Format: leaseFormat, Lease: l})
}

// decodeLease parses a lease record of pchannel p. It rejects an unknown
// format, malformed JSON and a record that names another pchannel.
func decodeLease(p string, b []byte) (Lease, error) {
	var probe struct {
		Format *int `json:"format"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return Lease{}, fmt.Errorf("%w: lease record of %s: %w", ErrCorrupt, p, err)
	}
	if probe.Format == nil {
		return Lease{}, fmt.Errorf("%w: lease record of %s: no \"format\" field", ErrCorrupt, p)
	}
	if *probe.Format != leaseFormat {
		return Lease{}, fmt.Errorf("%w: lease record of %s: unknown format %d (this build reads format %d)", ErrCorrupt,
			p, *probe.Format, leaseFormat)
	}
	var rec leaseRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return Lease{}, fmt.Errorf("%w: lease record of %s: %w", ErrCorrupt, p, err)
	}
	if rec.PChannel != p {
		return Lease{}, fmt.Errorf("%w: lease record of %s names pchannel %q", ErrCorrupt, p, rec.PChannel)
	}
	if err := checkTimes("lease", p, rec.Expires, rec.AcquiredAt); err != nil {
		return Lease{}, err
	}
	return rec.Lease, nil
}

// Defaults of LeaseConfig (docs/protocol.md, "Parameters").
const (
	DefaultLeaseTTL    = 10 * time.Second
	DefaultLeaseMargin = 2500 * time.Millisecond
)

// LeaseConfig sets the timing of pchannel leases. The zero value means the
// defaults.
type LeaseConfig struct {
	// TTL is how long an acquire or renew keeps the lease. Default 10s.
	TTL time.Duration
	// Margin (m) is the safety margin: a lease is taken over only after
	// Expires + Margin by the deciding coordinator's clock, and a holder
	// stops writing at t_send + TTL − Margin. It must cover clock skew,
	// drift over a TTL and one request timeout. Default 2.5s.
	Margin time.Duration
}

// withDefaults fills zero fields with the defaults.
func (c LeaseConfig) withDefaults() LeaseConfig {
	if c.TTL == 0 {
		c.TTL = DefaultLeaseTTL
	}
	if c.Margin == 0 {
		c.Margin = DefaultLeaseMargin
	}
	return c
}

// Validate checks 0 < Margin < TTL.
func (c LeaseConfig) Validate() error {
	if c.Margin <= 0 || c.Margin >= c.TTL {
		return fmt.Errorf("coordinator: lease config: want 0 < margin < TTL, have margin %v, TTL %v", c.Margin, c.TTL)
	}
	return nil
}
