package client

import (
	"fmt"
	"time"

	"github.com/cairnlog/cairn/infra/backoff"
)

// RetryPolicy says how a call is retried. Which failures are retried is not
// configurable (see Client): busy answers (429, 502, 503, 504), timeouts and
// transport failures, and — for an append — only when retrying is safe.
// Zero fields take the defaults written on each.
type RetryPolicy struct {
	// MaxAttempts bounds the attempts of one call, the first included.
	// Default 6; 1 never retries; -1 retries until the call's context
	// ends (or, for a Producer, until it is closed).
	MaxAttempts int
	// MinBackoff is the pause after the first failed attempt; it doubles
	// after each one, up to MaxBackoff, with jitter (each pause is drawn
	// from [d/2, d]; infra/backoff). A Retry-After from the server is a floor: the pause
	// is never shorter. Defaults 100 ms and 5 s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// AttemptTimeout bounds one attempt, from sending the request to
	// reading the whole answer; a read's wait is added to it. A timed-out
	// append is retried with the same idempotency keys. Default 30 s.
	AttemptTimeout time.Duration
}

// Defaults of RetryPolicy.
const (
	DefaultMaxAttempts    = 6
	DefaultMinBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Second
	DefaultAttemptTimeout = 30 * time.Second
)

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.MinBackoff == 0 {
		p.MinBackoff = DefaultMinBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = max(DefaultMaxBackoff, p.MinBackoff)
	}
	if p.AttemptTimeout == 0 {
		p.AttemptTimeout = DefaultAttemptTimeout
	}
	return p
}

// Validate reports a policy that cannot work, after defaults are applied to
// zero fields.
func (p RetryPolicy) Validate() error {
	p = p.withDefaults()
	switch {
	case p.MaxAttempts < -1:
		return fmt.Errorf("client: retry: %w: max attempts %d (want -1 or ≥ 1)", ErrInvalid, p.MaxAttempts)
	case p.MinBackoff < 0 || p.MaxBackoff < p.MinBackoff:
		return fmt.Errorf("client: retry: %w: backoff %v..%v", ErrInvalid, p.MinBackoff, p.MaxBackoff)
	case p.AttemptTimeout < 0:
		return fmt.Errorf("client: retry: %w: negative attempt timeout", ErrInvalid)
	}
	return nil
}

// pauses returns the pauses of one call's retries.
func (p RetryPolicy) pauses() backoff.Pauses {
	return backoff.Policy{Min: p.MinBackoff, Max: p.MaxBackoff}.Start()
}
