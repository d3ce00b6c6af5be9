package backoff

import (
	"context"
	"time"

	cbackoff "github.com/cenkalti/backoff/v5"
)

// Policy is a curve of pauses between retries: exponential with "equal
// jitter". The n-th pause (from 0) is drawn uniformly from [d/2, d], where
// d = Min·2ⁿ capped at Max: retries that fail together spread out, and no
// pause is longer than Max. The zero Policy never pauses.
type Policy struct {
	Min, Max time.Duration
}

// Start returns the pauses of one retry loop: a value, so that a loop that
// never fails allocates nothing.
func (p Policy) Start() Pauses {
	hi := max(p.Max, p.Min)
	// The library draws from [c·(1−f), c·(1+f)] around c = InitialInterval·
	// Multiplierⁿ, c capped at MaxInterval: c = 3d/4 with f = 1/3 is [d/2, d].
	return Pauses{max: hi, b: cbackoff.ExponentialBackOff{
		InitialInterval:     p.Min * 3 / 4,
		RandomizationFactor: 1.0 / 3,
		Multiplier:          2,
		MaxInterval:         hi * 3 / 4,
	}}
}

// Pauses is the sequence of pauses of one retry loop, drawn from its
// Policy. It is not safe for concurrent use: each loop starts its own (and
// uses it through a pointer or an addressable variable).
type Pauses struct {
	b   cbackoff.ExponentialBackOff
	max time.Duration
}

// Next returns the next pause.
func (p *Pauses) Next() time.Duration {
	return max(min(p.b.NextBackOff(), p.max), 0)
}

// Reset starts the curve again from Min.
func (p *Pauses) Reset() { p.b.Reset() }

// Wait sleeps the next pause, or until ctx ends (then it returns ctx's
// error).
func (p *Pauses) Wait(ctx context.Context) error { return Sleep(ctx, p.Next()) }

// Sleep waits d, or until ctx ends: then it returns ctx.Err() at once. A d
// of zero or less does not wait, but still reports an ended ctx.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
