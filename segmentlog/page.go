package segmentlog

import (
	"context"
	"errors"
	"time"
)

// PageLimits bound one Scanner.Page.
type PageLimits struct {
	// Max is the most messages of the page (at least 1).
	Max int
	// MaxBytes bounds the payload bytes of the page; the first message is
	// returned whatever its size.
	MaxBytes int
	// Wait is how long an empty page waits for a first message.
	Wait time.Duration
	// BeforeWait, if set, runs once, before the page starts to wait; its
	// error ends the page (a server bounds its waiting readers with it).
	BeforeWait func() error
}

// Page reads one page of a long poll: the messages there from the scan's
// position, within lim; if none is there, it waits until one is appended
// or lim.Wait has passed, then returns what arrived — possibly nothing,
// which is not an error. A page never waits for more once it holds a
// message. When ctx ends, Page returns the messages read so far (perhaps
// none). Resume gives the position right after the page.
//
// Page reads as a NoWait scanner does until the tail (Reading rule 3
// included), then waits as a waiting one does (woken by an in-process
// writer through ScannerConfig.Tail, else probing the next slot with the
// PollMin…PollMax backoff); the scanner's NoWait setting is restored
// before it returns.
func (s *Scanner) Page(ctx context.Context, lim PageLimits) ([]Delivery, error) {
	saved := s.cfg.NoWait
	defer func() { s.cfg.NoWait = saved }()
	deadline := time.Now().Add(lim.Wait)
	out := []Delivery{}
	size, waited := 0, false
	for len(out) < max(lim.Max, 1) && (len(out) == 0 || size < lim.MaxBytes) {
		s.cfg.NoWait = true
		d, err := s.Next(ctx)
		if errors.Is(err, ErrTail) {
			left := time.Until(deadline)
			if len(out) > 0 || left <= 0 {
				break
			}
			if !waited && lim.BeforeWait != nil {
				if err := lim.BeforeWait(); err != nil {
					return nil, err
				}
			}
			waited = true
			s.cfg.NoWait = false
			wctx, cancel := context.WithTimeout(ctx, left)
			d, err = s.Next(wctx)
			cancel()
			if err != nil && ctx.Err() == nil && wctx.Err() != nil {
				break // the wait is over, nothing arrived
			}
		}
		if err != nil {
			if len(out) > 0 || (ctx.Err() != nil && errors.Is(err, ctx.Err())) {
				break // what was read; the caller resumes from Resume
			}
			return nil, err
		}
		out = append(out, d)
		size += len(d.Payload)
	}
	return out, nil
}
