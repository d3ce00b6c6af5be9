package segmentlog

import (
	"context"
	"time"
)

// LeaseGrant is what a successful acquire or renew of a pchannel lease hands
// the holder. The coordinator package produces it; the Writer consumes it.
type LeaseGrant struct {
	PChannel string
	Term     uint64 // lease generation; strictly increasing per pchannel
	Nonce    string // the acquirer's nonce; exactly one per term
	// Deadline is t_send + TTL − margin, t_send being when the acquire or
	// renew request was sent. No PUT attempt of this term may run past it.
	Deadline time.Time
	// TickFloor: every timetick of this term must be greater than it (the
	// previous holder's tt_max when its lease expired, or its last tick
	// when it released).
	TickFloor uint64
	// TickMax (tt_max): no timetick of this term may exceed it until a renew
	// raises it.
	TickMax uint64
	// TailHint: every slot below it is known to be filled. It is never above
	// the previous holder's ack frontier.
	TailHint uint64
	// Shared marks a shared term (docs/protocol.md, "Shared terms"); OpenAt
	// is its first data slot, 0 while its opener places the window.
	Shared bool
	OpenAt uint64
}

// Leases is the lease service the Writer needs. coordinator.Leases
// implements it over CAS-updated records; all methods are safe for
// concurrent use.
type Leases interface {
	// Acquire takes the lease of pchannel for holder with a fresh nonce. It
	// never takes over a live lease; a retry with the same nonce returns the
	// same term.
	Acquire(ctx context.Context, pchannel, holder, nonce string) (LeaseGrant, error)
	// Renew extends the lease of (term, nonce) and raises its TickMax.
	Renew(ctx context.Context, pchannel string, term uint64, nonce string) (LeaseGrant, error)
	// Release gives the lease up, recording the final tail (the ack
	// frontier) and the last timetick used.
	Release(ctx context.Context, pchannel string, term uint64, nonce string, tail, lastTick uint64) error
}

// Taker is a lease service that can take a live lease over when told to
// (WriterConfig.Takeover; docs/protocol.md, Acquire 4). coordinator.Leases
// implements it.
type Taker interface {
	Takeover(ctx context.Context, pchannel, holder, nonce string) (LeaseGrant, error)
}

// SharedLeases is the lease service a SharedWriter needs (docs/protocol.md,
// "Shared terms"). coordinator.Leases implements it.
type SharedLeases interface {
	// OpenShared adopts the open shared term of pchannel, or takes the lease
	// over with a new shared term for nonce (OpenAt 0), which the caller
	// opens and then marks with MarkOpen.
	OpenShared(ctx context.Context, pchannel, holder, nonce string) (LeaseGrant, error)
	MarkOpen(ctx context.Context, pchannel string, term uint64, nonce string, openAt uint64) error
}
