package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// Resource locks (docs/protocol.md, "Broadcast and coordinator" rule 3) are
// records like the others — {prefix}/meta/locks/{resource}.json, created
// with PutIfAbsent, changed only by CAS — held with a lease: a holder
// (the broadcast ID), a nonce (one run of it) and an expiry. A lock is
// free when released or expired by the deciding clock plus the margin, so
// a frozen holder's lock is taken only after its own deadline (send time
// + TTL − margin) has passed by twice the margin, as with pchannel
// leases. Locks serialise broadcasts that share a resource, so their
// copies appear in the same order on every vchannel they share.
//
// The lease says which run of a task holds the lock; the lock belongs to
// the task from its first copy until its last. A run that dies after the
// task's first copy was sent leaves the locks to the task: when the lease
// lapses, only another run of the same task may take them, never another
// task, or that task could overtake this one on some vchannels and not on
// others. A lapsed lock of a task that has sent nothing yet, or that has
// finished, may be taken by any task.

// ErrLockHeld: a resource lock is held by another holder.
var ErrLockHeld = errors.New("coordinator: resource lock held")

// Lock is the record of one resource lock. It is a plain value.
type Lock struct {
	Resource string    `json:"resource"`
	Holder   string    `json:"holder"` // a broadcast ID; "" if never held
	Nonce    string    `json:"nonce"`  // the run of Holder that holds it
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released"`
	Version  uint64    `json:"version"`
}

// free reports whether l's lease has lapsed at now (or it is not held).
func (l *Lock) free(now time.Time, margin time.Duration) bool {
	return l == nil || l.Released || l.Holder == "" || now.After(l.Expires.Add(margin))
}

// decideLock grants or renews resource to (holder, nonce) until now + ttl.
// A lock another holder left expired is taken only if yield names that
// exact holding (holder and nonce): the caller has checked that the task
// holding it may be overtaken (Broadcaster.lockOne).
func decideLock(cur *Lock, resource, holder, nonce string, ttl, margin time.Duration, now time.Time, yield *Lock) (Lock, error) {
	mine := cur != nil && !cur.Released && cur.Holder == holder && cur.Nonce == nonce
	switch {
	case mine, cur == nil, cur.Released, cur.Holder == "":
	case !cur.free(now, margin):
		return Lock{}, fmt.Errorf("%w: %s by broadcast %s until %s", ErrLockHeld, resource, cur.Holder,
			cur.Expires.Add(margin).Format(time.RFC3339Nano))
	case cur.Holder == holder:
		// An earlier run of the same task, expired.
	case yield == nil || yield.Holder != cur.Holder || yield.Nonce != cur.Nonce:
		return Lock{}, fmt.Errorf("%w: %s by broadcast %s, which has started appending", ErrLockHeld, resource, cur.Holder)
	}
	next := Lock{Resource: resource, Holder: holder, Nonce: nonce, Expires: now.Add(ttl), Version: 1}
	if cur != nil {
		next.Version = cur.Version + 1
	}
	return next, nil
}

// decideUnlock releases resource if (holder, nonce) holds it; otherwise it
// changes nothing.
func decideUnlock(cur *Lock, holder, nonce string) (Lock, error) {
	if cur == nil {
		return Lock{}, errNothingToRelease
	}
	if cur.Released || cur.Holder != holder || cur.Nonce != nonce {
		return *cur, nil
	}
	next := *cur
	next.Released = true
	next.Version++
	return next, nil
}

// errNothingToRelease stops an unlock of a lock that was never written.
var errNothingToRelease = errors.New("coordinator: no lock record")

const lockFormat = 1

type lockRecord struct {
	Format int `json:"format"`
	Lock
}

func lockPrefix(l segmentlog.Layout) string               { return metaKey(l, "meta", "locks") + "/" }
func lockKey(l segmentlog.Layout, resource string) string { return lockPrefix(l) + resource + ".json" }

func lockCodec(l segmentlog.Layout) codec[Lock] {
	return codec[Lock]{
		kind:   "lock",
		key:    func(r string) string { return lockKey(l, r) },
		prefix: lockPrefix(l),
		encode: func(k Lock) ([]byte, error) {
			k.Expires = utc(k.Expires)
			return json.Marshal(lockRecord{Format: lockFormat, Lock: k})
		},
		decode: func(name string, b []byte) (Lock, error) {
			if err := checkFormat("lock", name, b, lockFormat); err != nil {
				return Lock{}, err
			}
			var rec lockRecord
			if err := json.Unmarshal(b, &rec); err != nil {
				return Lock{}, fmt.Errorf("%w: lock record of %s: %w", ErrCorrupt, name, err)
			}
			if rec.Resource != name {
				return Lock{}, fmt.Errorf("%w: lock record of %s names resource %q", ErrCorrupt, name, rec.Resource)
			}
			if err := checkTimes("lock", name, rec.Expires); err != nil {
				return Lock{}, err
			}
			return rec.Lock, nil
		},
		version: func(k Lock) uint64 { return k.Version },
	}
}
