package api

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/segmentlog"
)

// readQuery is a parsed read request.
type readQuery struct {
	from      segmentlog.Position
	vchannels []string
	types     []segmentlog.MessageType
	max       int
	wait      time.Duration
	// ignorePause reads through the server's scanner startup delay.
	ignorePause bool
}

// parsePosition is segmentlog.ParsePosition, with offsets up to MaxOffset
// and a refusal as a 400.
func parsePosition(s string) (segmentlog.Position, error) {
	pos, err := segmentlog.ParsePosition(s)
	if err != nil {
		return segmentlog.Position{}, errorf(http.StatusBadRequest, wire.CodeMalformed, "position %v", err)
	}
	if pos.Kind == segmentlog.StartAtID && pos.ID.Offset > wire.MaxOffset {
		return segmentlog.Position{}, errorf(http.StatusBadRequest, wire.CodeMalformed, "position %q: offset over %d", s, wire.MaxOffset)
	}
	return pos, nil
}

// parseOffset parses a WAL offset: decimal, at most MaxOffset.
func parseOffset(s string) (uint64, error) {
	off, err := segmentlog.ParseDecimal(s, wire.MaxOffset)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, wire.CodeMalformed, "offset %q: %v", s, err)
	}
	return off, nil
}

// parseReadQuery parses from, vchannel (repeatable), type (repeatable), max,
// wait and ignore_pause; anything else is a 400.
func parseReadQuery(q url.Values, maxMessages int, maxWait time.Duration) (readQuery, error) {
	rq := readQuery{from: segmentlog.Earliest(), max: min(DefaultReadMessages, maxMessages)}
	bad := func(format string, args ...any) (readQuery, error) {
		return readQuery{}, errorf(http.StatusBadRequest, wire.CodeMalformed, format, args...)
	}
	for k, vs := range q {
		switch k {
		case "vchannel":
			for _, v := range vs {
				if err := validName("vchannel", v); err != nil {
					return readQuery{}, err
				}
				rq.vchannels = append(rq.vchannels, v)
			}
			continue
		case "type":
			for _, v := range vs {
				t, err := segmentlog.ParseMessageType(v)
				if err != nil {
					return bad("type: %v", err)
				}
				rq.types = append(rq.types, t)
			}
			continue
		case "from", "max", "wait", "ignore_pause":
		default:
			return bad("unknown query parameter %q", k)
		}
		if len(vs) != 1 {
			return bad("%s given more than once", k)
		}
		v := vs[0]
		switch k {
		case "from":
			pos, err := parsePosition(v)
			if err != nil {
				return readQuery{}, err
			}
			rq.from = pos
		case "max":
			n, err := segmentlog.ParseDecimal(v, math.MaxInt32)
			if err != nil || n < 1 {
				return bad("max %q: want a whole number ≥ 1", v)
			}
			rq.max = int(min(n, uint64(maxMessages)))
		case "wait":
			d, err := parseWait(v, maxWait)
			if err != nil {
				return readQuery{}, err
			}
			rq.wait = d
		case "ignore_pause":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("ignore_pause %q: want true or false", v)
			}
			rq.ignorePause = b
		}
	}
	return rq, nil
}

// parseWait reads a wait (of a read or a broadcast): a non-negative Go
// duration, capped at maxWait; a 400 otherwise.
func parseWait(v string, maxWait time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errorf(http.StatusBadRequest, wire.CodeMalformed, "wait %q: want a non-negative Go duration such as 500ms or 10s", v)
	}
	return min(d, maxWait), nil
}

func (s *Server) handleRead(w http.ResponseWriter, r *http.Request) error {
	p := r.PathValue("p")
	if err := s.configured(p); err != nil {
		return err
	}
	q, err := parseReadQuery(r.URL.Query(), s.cfg.MaxReadMessages, s.cfg.MaxWait)
	if err != nil {
		return err
	}
	s.extendWrite(w, q.wait)
	ctx := r.Context()
	if err := s.mustKnow(ctx, p); err != nil {
		return err
	}
	resp := wire.ReadResponse{PChannel: p, Messages: []wire.MessageOut{}, Next: q.from.String()}
	resp.Paused, err = s.poll(ctx, q, func(lim segmentlog.PageLimits) error {
		page, next, err := s.sys.Read(ctx, p, system.ReadRequest{From: q.from, VChannels: q.vchannels, Types: q.types, Limits: lim})
		resp.Messages, resp.Next = mapped(page, messageOut), next.String()
		return err
	})
	if err != nil {
		return neverWritten(p, err)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// poll runs one read of a read route: held back while the scanner startup
// delay lasts (system.System.HoldReads; paused), unless q ignores it, else
// read with q's limits (up to q.max messages and MaxReadBytes of payload,
// waiting up to q.wait for the first if there is none), a read that waits
// taking a place among the waiting reads first.
func (s *Server) poll(ctx context.Context, q readQuery, read func(segmentlog.PageLimits) error) (paused bool, err error) {
	if !q.ignorePause {
		if paused, err := s.sys.HoldReads(ctx, q.wait); err != nil || paused {
			return paused, err
		}
	}
	var w waiter
	defer w.release(s)
	return false, read(segmentlog.PageLimits{Max: q.max, MaxBytes: s.cfg.MaxReadBytes, Wait: q.wait, BeforeWait: func() error { return w.take(s) }})
}

// waiter is a read's place among those waiting at the tail, at most
// Config.MaxWaiters.
type waiter struct{ taken bool }

// take takes a place, or answers 429 with Retry-After.
func (w *waiter) take(s *Server) error {
	select {
	case s.waiters <- struct{}{}:
		w.taken = true
		s.metrics.waiters.Inc()
		return nil
	default:
		e := errorf(http.StatusTooManyRequests, wire.CodeTooManyWaiters, "%d reads are waiting at the tail already", s.cfg.MaxWaiters)
		e.retryAfter = time.Second
		return e
	}
}

// release gives the place back if it was taken.
func (w *waiter) release(s *Server) {
	if w.taken {
		<-s.waiters
		s.metrics.waiters.Dec()
	}
}

func messageOut(d segmentlog.Delivery) wire.MessageOut {
	m := wire.MessageOut{
		Offset: d.ID.Offset, Index: d.ID.Index, Term: d.Term, TimeTick: d.TimeTick,
		Type: d.Type.String(), VChannel: d.VChannel, Payload: d.Payload, Properties: d.Properties,
		BroadcastID: d.BroadcastID,
	}
	if !d.Key.IsZero() {
		m.Key = &wire.Key{Producer: d.Key.Producer, Epoch: d.Key.Epoch, Seq: d.Key.Seq}
	}
	return m
}
