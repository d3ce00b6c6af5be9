package lambdaemu

import (
	"math/rand/v2"
	"time"
)

// Idle describes an idle environment a Policy may pick.
type Idle struct {
	ID        int       // the environment's ID; IDs grow with start order
	IdleSince time.Time // when it last finished an invocation
}

// A Policy picks the idle environment that serves the next request. The
// emulator calls Pick with its lock held, one call at a time, so a Policy
// needs no locking of its own; it must not call back into the Function.
type Policy interface {
	// Pick returns an index into idle, which is never empty and is sorted
	// by ID.
	Pick(idle []Idle) int
}

type policyFunc func([]Idle) int

func (p policyFunc) Pick(idle []Idle) int { return p(idle) }

// MostRecent picks the environment that went idle last (a stack), which
// keeps the fewest environments warm: what Lambda is observed to do.
func MostRecent() Policy {
	return policyFunc(func(idle []Idle) int {
		best := 0
		for i, e := range idle {
			if e.IdleSince.After(idle[best].IdleSince) {
				best = i
			}
		}
		return best
	})
}

// Random picks uniformly with a generator seeded by seed, so a test run
// can be replayed.
func Random(seed uint64) Policy {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return policyFunc(func(idle []Idle) int { return r.IntN(len(idle)) })
}

// RoundRobin picks the idle environment with the next ID after the one it
// picked last, wrapping around, which spreads requests over every warm
// environment.
func RoundRobin() Policy {
	last := -1
	return policyFunc(func(idle []Idle) int {
		pick := 0
		for i, e := range idle {
			if e.ID > last {
				pick = i
				break
			}
		}
		last = idle[pick].ID
		return pick
	})
}
