package coordinator

import (
	"fmt"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// The lease decisions are pure functions of the current record and the
// deciding coordinator's clock reading: no I/O, no hidden state. Leases (the
// driver) reads the record, calls one of them and writes the result with a
// compare-and-swap; on a lost race it reads again and decides again.
//
// A decision that changes the record returns it with Version+1. A decision
// that returns the record unchanged (same Version) needs no write: an
// idempotent retry.

// decideAcquire decides an acquire of pchannel by holder with nonce. cur is
// the current record, nil if there is none.
//
//   - A retry (cur has this nonce and holder and is not released) gets cur
//     back unchanged: the same term, floor and tt_max (docs/protocol.md, Acquire 1).
//   - Otherwise the lease is granted only if there is no record, it is
//     released, or now > cur.Expires + Margin (Acquire 2); else the error is
//     a *HeldError.
//   - A grant bumps the term by one, keeps the tail hint and the last tick,
//     and starts the timetick range above everything the previous holder may
//     have used (Append 4): TickFloor is its last tick if it released, its
//     tt_max if its lease expired.
func decideAcquire(cur *Lease, pchannel, holder, nonce string, now time.Time, cfg LeaseConfig) (Lease, error) {
	if cur != nil && cur.Nonce == nonce {
		if !cur.Released && cur.Holder == holder {
			return *cur, nil
		}
		return Lease{}, fmt.Errorf("%w: nonce %q belongs to term %d of %q (released %t)",
			ErrNonceReused, nonce, cur.Term, cur.Holder, cur.Released)
	}
	if cur != nil && !cur.Released && !(cur.Shared && cur.OpenAt > 0) {
		if err := heldUntil(*cur, now, cfg); err != nil {
			return Lease{}, err
		}
	}
	return nextTerm(cur, pchannel, holder, nonce, now, cfg), nil
}

// heldUntil returns a *HeldError while cur is live: until Expires + Margin
// by this clock.
func heldUntil(cur Lease, now time.Time, cfg LeaseConfig) error {
	until := cur.Expires.Add(cfg.Margin)
	if now.After(until) {
		return nil
	}
	return &HeldError{
		PChannel: cur.PChannel,
		Holder:   cur.Holder,
		Term:     cur.Term,
		// Granted only strictly after until; round up to the next whole
		// millisecond past it.
		RetryAfter: until.Sub(now).Truncate(time.Millisecond) + time.Millisecond,
	}
}

// nextTerm is the grant of term cur.Term+1 to (holder, nonce), whatever
// state cur is in: the callers decide whether cur may be taken.
func nextTerm(cur *Lease, pchannel, holder, nonce string, now time.Time, cfg LeaseConfig) Lease {
	next := Lease{
		PChannel:   pchannel,
		Term:       1,
		Nonce:      nonce,
		Holder:     holder,
		Expires:    now.Add(cfg.TTL),
		AcquiredAt: now,
		Version:    1,
	}
	if cur != nil {
		next.Term = cur.Term + 1
		next.Tail = cur.Tail
		next.LastTick = cur.LastTick
		next.TickFloor = tickFloorAfter(*cur)
		next.Version = cur.Version + 1
	}
	// tt_max covers the TTL by this clock, and at least a TTL's worth of
	// ticks above the floor even if this clock is behind the previous
	// holder's.
	next.TTMax = max(segmentlog.TickOf(next.Expires), next.TickFloor+segmentlog.TickSpan(cfg.TTL))
	return next
}

// decideTakeover decides a forced takeover of pchannel by holder with nonce
// (docs/protocol.md, Acquire 4): like decideAcquire, but a live lease is
// taken too. Safety does not rest on the wait: the new term's fence makes
// every later append of the old holder fail (Fence 3, Append 2), and the
// new term starts above the old one's tt_max, which bounds every timetick
// the old holder handed out, Sync answers included.
func decideTakeover(cur *Lease, pchannel, holder, nonce string, now time.Time, cfg LeaseConfig) (Lease, error) {
	if cur != nil && cur.Nonce == nonce {
		return decideAcquire(cur, pchannel, holder, nonce, now, cfg)
	}
	return nextTerm(cur, pchannel, holder, nonce, now, cfg), nil
}

// decideOpenShared decides how (holder, nonce) joins the shared term of
// pchannel (docs/protocol.md, "Shared terms"):
//
//   - an open shared term (OpenAt > 0, not released) is adopted as it is:
//     the record comes back unchanged, and the caller writes with its term
//     and nonce;
//   - a shared term still being opened by another nonce is a *HeldError
//     until its Expires + Margin (the opener's deadline), and is taken over
//     after it;
//   - a retry of our own open gets our record back;
//   - anything else — no record, released, expired, or a live exclusive
//     lease — is taken over with a new shared term, exactly as a forced
//     takeover, with OpenAt 0 until the opener's window landed.
func decideOpenShared(cur *Lease, pchannel, holder, nonce string, now time.Time, cfg LeaseConfig) (Lease, error) {
	if cur != nil && !cur.Released && cur.Shared {
		switch {
		case cur.OpenAt > 0:
			return *cur, nil
		case cur.Nonce == nonce:
			return decideAcquire(cur, pchannel, holder, nonce, now, cfg)
		default:
			if err := heldUntil(*cur, now, cfg); err != nil {
				return Lease{}, err
			}
		}
	} else if cur != nil && cur.Nonce == nonce {
		return decideAcquire(cur, pchannel, holder, nonce, now, cfg)
	}
	next := nextTerm(cur, pchannel, holder, nonce, now, cfg)
	next.Shared = true
	return next, nil
}

// decideMarkOpen records openAt as the first data slot of the shared term
// (term, nonce) its opener placed. Marking again with the same slot is not
// an error.
func decideMarkOpen(cur Lease, term uint64, nonce string, openAt uint64) (Lease, error) {
	if err := checkHolder(cur, term, nonce); err != nil {
		return Lease{}, err
	}
	switch {
	case !cur.Shared || cur.Released:
		return Lease{}, fmt.Errorf("%w: term %d of %s is not an open shared term", ErrLeaseLost, term, cur.PChannel)
	case cur.OpenAt == openAt:
		return cur, nil
	case cur.OpenAt != 0:
		return Lease{}, fmt.Errorf("%w: shared term %d of %s opened at %d, not %d", segmentlog.ErrInvariant, term, cur.PChannel, cur.OpenAt, openAt)
	}
	next := cur
	next.OpenAt = openAt
	next.Version = cur.Version + 1
	return next, nil
}

// tickFloorAfter is the timetick floor of the term that follows prev: above
// every tick prev's holder (or any earlier one) may have used.
func tickFloorAfter(prev Lease) uint64 {
	if prev.Released {
		// The releaser reported its last tick; it has stopped writing.
		return max(prev.LastTick, prev.TickFloor)
	}
	// An expired holder may have stamped ticks up to its tt_max, and may
	// still have PUTs in flight.
	return max(prev.TTMax, prev.LastTick, prev.TickFloor)
}

// decideRenew decides a renew by the holder of (term, nonce). It succeeds
// only while the record still carries that term and nonce and is not
// released: also after Expires, if nobody acquired meanwhile, because an
// acquire would have bumped the term. Expires and TTMax never decrease.
func decideRenew(cur Lease, term uint64, nonce string, now time.Time, cfg LeaseConfig) (Lease, error) {
	if err := checkHolder(cur, term, nonce); err != nil {
		return Lease{}, err
	}
	if cur.Released {
		return Lease{}, fmt.Errorf("%w: term %d of %s was released", ErrLeaseLost, term, cur.PChannel)
	}
	next := cur
	next.Expires = later(cur.Expires, now.Add(cfg.TTL))
	next.TTMax = max(cur.TTMax, segmentlog.TickOf(now.Add(cfg.TTL)))
	next.Version = cur.Version + 1
	return next, nil
}

// decideRelease decides a release by the holder of (term, nonce) with its
// final ack frontier tail and the last timetick it used. The record keeps
// the highest tail and last tick ever reported (a release's tail is the
// releaser's ack frontier, which is at or above every earlier hint), and the
// last tick is at least the term's floor, so the next holder starts above
// every earlier term even if this one never stamped a tick. Releasing again
// with the same term and nonce is not an error; it only raises what was
// recorded, if anything.
func decideRelease(cur Lease, term uint64, nonce string, tail, lastTick uint64, now time.Time) (Lease, error) {
	if err := checkHolder(cur, term, nonce); err != nil {
		return Lease{}, err
	}
	next := cur
	next.Tail = max(cur.Tail, tail)
	next.LastTick = max(cur.LastTick, lastTick, cur.TickFloor)
	if cur.Released {
		if next.Tail == cur.Tail && next.LastTick == cur.LastTick {
			return cur, nil
		}
		next.Version = cur.Version + 1
		return next, nil
	}
	next.Released = true
	next.Expires = now
	next.Version = cur.Version + 1
	return next, nil
}

// checkHolder returns an error wrapping ErrLeaseLost unless cur belongs to
// (term, nonce).
func checkHolder(cur Lease, term uint64, nonce string) error {
	if cur.Term != term || cur.Nonce != nonce {
		return fmt.Errorf("%w: %s is at term %d (holder %q), not term %d with nonce %q",
			ErrLeaseLost, cur.PChannel, cur.Term, cur.Holder, term, nonce)
	}
	return nil
}

// grantOf is what the holder of l is told. sentAt is when the operation was
// sent: read from the clock before its first store request.
//
// Deadline is sentAt + TTL − Margin (docs/protocol.md, Acquire 3), and never later
// than l.Expires − Margin. The two agree for a fresh write (Expires is
// decided after sentAt); the second bounds a retried acquire that found its
// record already written, and a reply that is resolved by reading back a
// record another coordinator renewed.
func grantOf(l Lease, sentAt time.Time, cfg LeaseConfig) segmentlog.LeaseGrant {
	deadline := sentAt.Add(cfg.TTL - cfg.Margin)
	if byRecord := l.Expires.Add(-cfg.Margin); byRecord.Before(deadline) {
		deadline = byRecord
	}
	return segmentlog.LeaseGrant{
		PChannel:  l.PChannel,
		Term:      l.Term,
		Nonce:     l.Nonce,
		Deadline:  deadline,
		TickFloor: l.TickFloor,
		TickMax:   l.TTMax,
		TailHint:  l.Tail,
		Shared:    l.Shared,
		OpenAt:    l.OpenAt,
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
