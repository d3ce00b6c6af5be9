package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
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
	// trim and earliestID are a vchannel read's own trim point and the
	// start of its messages (segmentlog.ScannerConfig.Trim, EarliestID).
	trim, earliestID segmentlog.MessageID
}

// parsePosition parses "earliest", "latest", "id:OFFSET.INDEX",
// "after:id:OFFSET.INDEX" or "timetick:T", the form Position.String prints
// (but after:, which is the next ID: the index one up, or the next offset's
// first after the last index a batch can have). Numbers are decimal without
// sign or leading zeros; offsets are at most MaxOffset and indexes below
// segmentlog.MaxMessages.
func parsePosition(s string) (segmentlog.Position, error) {
	bad := func(why string) error {
		return errorf(http.StatusBadRequest, wire.CodeMalformed, "position %q: %s (want earliest, latest, id:OFFSET.INDEX, after:id:OFFSET.INDEX or timetick:T)", s, why)
	}
	if rest, ok := strings.CutPrefix(s, "after:"); ok {
		if !strings.HasPrefix(rest, "id:") {
			return segmentlog.Position{}, bad("after: takes an ID")
		}
		pos, err := parsePosition(rest)
		if err != nil {
			return segmentlog.Position{}, err
		}
		return segmentlog.AtID(segmentlog.NextID(pos.ID)), nil
	}
	switch {
	case s == "earliest":
		return segmentlog.Earliest(), nil
	case s == "latest":
		return segmentlog.Latest(), nil
	case strings.HasPrefix(s, "id:"):
		o, i, ok := strings.Cut(s[len("id:"):], ".")
		if !ok {
			return segmentlog.Position{}, bad("an ID is OFFSET.INDEX")
		}
		off, err := parseOffset(o)
		if err != nil {
			return segmentlog.Position{}, err
		}
		idx, err := parseDecimal(i, segmentlog.MaxMessages-1)
		if err != nil {
			return segmentlog.Position{}, bad("index: " + err.Error())
		}
		return segmentlog.AtID(segmentlog.MessageID{Offset: off, Index: uint32(idx)}), nil
	case strings.HasPrefix(s, "timetick:"):
		t, err := parseDecimal(s[len("timetick:"):], math.MaxUint64)
		if err != nil {
			return segmentlog.Position{}, bad("timetick: " + err.Error())
		}
		return segmentlog.AtTimeTick(t), nil
	}
	return segmentlog.Position{}, bad("unknown form")
}

// parseOffset parses a WAL offset: decimal, at most MaxOffset.
func parseOffset(s string) (uint64, error) {
	off, err := parseDecimal(s, wire.MaxOffset)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, wire.CodeMalformed, "offset %q: %v", s, err)
	}
	return off, nil
}

var (
	errNotDecimal = errors.New("not a decimal number without sign or leading zeros")
	errOutOfRange = errors.New("out of range")
)

// parseDecimal parses a canonical unsigned decimal up to limit.
func parseDecimal(s string, limit uint64) (uint64, error) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, errNotDecimal
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errNotDecimal
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > limit {
		return 0, errOutOfRange
	}
	return v, nil
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
			n, err := parseDecimal(v, math.MaxInt32)
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
	resp, err := s.read(ctx, p, q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// holdForPause holds a read back while the startup delay (write-only
// recovery) lasts, at most the read's wait, before the read touches the
// store. It reports whether the pause still holds; then nothing is read.
func (s *Server) holdForPause(ctx context.Context, q readQuery) (bool, error) {
	if q.ignorePause || !s.pause.Paused() {
		return false, nil
	}
	pctx, cancel := context.WithTimeout(ctx, q.wait)
	err := s.pause.Wait(pctx)
	cancel()
	switch {
	case err == nil:
		return false, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	}
	return true, nil
}

// read runs one read: it delivers what is there from q.from (up to q.max
// messages and MaxReadBytes of payload), and if nothing is, waits up to
// q.wait for the first message to arrive.
func (s *Server) read(ctx context.Context, p string, q readQuery) (wire.ReadResponse, error) {
	if paused, err := s.holdForPause(ctx, q); err != nil || paused {
		return wire.ReadResponse{PChannel: p, Messages: []wire.MessageOut{}, Next: q.from.String(), Paused: paused}, err
	}
	from := q.from
	if from.Kind == segmentlog.StartLatest {
		// Resolved here, so that "next" names a concrete slot even when
		// nothing arrives: a poll loop then misses nothing between polls.
		t, err := s.tail(ctx, p)
		if err != nil {
			return wire.ReadResponse{}, err
		}
		from = segmentlog.AtID(segmentlog.MessageID{Offset: t.NextOffset})
	}
	sc, err := segmentlog.NewScanner(ctx, segmentlog.ScannerConfig{
		PChannel: p, Layout: s.sc.Layout, From: from,
		VChannels: q.vchannels, Types: q.types, Trim: q.trim, EarliestID: q.earliestID,
		Cache: s.pool.Cache(), Tail: s.pool.Tail(), NoWait: true, Segments: s.segs, Checkpoints: s.checkpoints,
	}, s.store)
	if err != nil {
		return wire.ReadResponse{}, err
	}
	defer sc.Close()
	waiting := false
	defer func() {
		if waiting {
			<-s.waiters
			s.metrics.waiters.Dec()
		}
	}()
	page, err := sc.Page(ctx, segmentlog.PageLimits{Max: q.max, MaxBytes: s.cfg.MaxReadBytes, Wait: q.wait,
		BeforeWait: func() error {
			select {
			case s.waiters <- struct{}{}:
				waiting = true
				s.metrics.waiters.Inc()
				return nil
			default:
				e := errorf(http.StatusTooManyRequests, wire.CodeTooManyWaiters, "%d reads are waiting at the tail already", s.cfg.MaxWaiters)
				e.retryAfter = time.Second
				return e
			}
		}})
	if err != nil {
		return wire.ReadResponse{}, err
	}
	resp := wire.ReadResponse{PChannel: p, Messages: make([]wire.MessageOut, len(page)), Next: sc.Resume().String()}
	for i, d := range page {
		resp.Messages[i] = messageOut(d)
	}
	return resp, nil
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
