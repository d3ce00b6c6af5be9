package api

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/segmentlog"
)

// The data path by vchannel (node role): the registry names the pchannel,
// then the pchannel routes' code runs with the vchannel filter. A restored
// vchannel reads its restored history first (restored:OFFSET.INDEX
// positions), then what was appended to it since.

// restoredPrefix starts a position inside a restored vchannel's history.
const restoredPrefix = "restored:"

func (s *Server) handleVChannelAppend(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("v")
	if err := validName("vchannel", name); err != nil {
		return err
	}
	q, err := parseAppendQuery(r.URL.Query())
	if err != nil {
		return err
	}
	body, err := s.readAppendBody(r)
	if err != nil {
		return err
	}
	in, err := decodeAppendFor(r.Header.Get("Content-Type"), body, limits{s.cfg.MaxAppendMessages, s.sc.MaxBatchBytes}, name)
	if err != nil {
		return err
	}
	v, err := s.activeVChannel(r.Context(), name)
	if err != nil {
		return err
	}
	return s.appendAndAnswer(w, r, v.PChannel, in, q)
}

// activeVChannel returns the record of name if it takes appends
// (system.System.ActiveVChannel) once the name is valid.
func (s *Server) activeVChannel(ctx context.Context, name string) (coordinator.VChannel, error) {
	if err := validName("vchannel", name); err != nil {
		return coordinator.VChannel{}, err
	}
	return s.sys.ActiveVChannel(ctx, name)
}

func (s *Server) handleVChannelRead(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("v")
	if err := validName("vchannel", name); err != nil {
		return err
	}
	q := r.URL.Query()
	if _, ok := q["vchannel"]; ok {
		return errorf(http.StatusBadRequest, wire.CodeMalformed, "the route names the vchannel; no vchannel parameter")
	}
	// restored:OFFSET.INDEX is a position of this route only.
	from := q.Get("from") // as given, for a paused answer's next
	var fromRestored *segmentlog.MessageID
	if f := q["from"]; len(f) == 1 && strings.HasPrefix(f[0], restoredPrefix) {
		pos, err := parsePosition("id:" + f[0][len(restoredPrefix):])
		if err != nil {
			return errorf(http.StatusBadRequest, wire.CodeMalformed, "position %q: want restored:OFFSET.INDEX", f[0])
		}
		fromRestored = &pos.ID
		q.Del("from")
	}
	rq, err := parseReadQuery(q, s.cfg.MaxReadMessages, s.cfg.MaxWait)
	if err != nil {
		return err
	}
	s.extendWrite(w, rq.wait)
	ctx := r.Context()
	v, err := s.vchannel(ctx, name)
	if err != nil {
		return err
	}
	if v.State == coordinator.VChannelReclaiming {
		return errorf(http.StatusConflict, wire.CodeVChannelDropped, "vchannel %q was dropped and its data is being reclaimed", name)
	}
	rq.vchannels = []string{name}
	if paused, err := s.holdForPause(ctx, rq); err != nil || paused {
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, wire.ReadResponse{PChannel: v.PChannel, VChannel: name, Messages: []wire.MessageOut{}, Next: cmp.Or(from, rq.from.String()), Paused: true})
		return nil
	}
	job, err := s.sys.RestoredFrom(ctx, v)
	if err != nil {
		return err
	}
	if fromRestored != nil && job == "" {
		return errorf(http.StatusBadRequest, wire.CodeInvalid, "vchannel %q has no restored history", name)
	}
	if job != "" && v.Trim != (segmentlog.MessageID{}) {
		// A trim point is an ID of v's own pchannel, and the restored
		// history reads before all of those: any trim drops all of it.
		if fromRestored != nil {
			return &segmentlog.TruncatedError{PChannel: v.PChannel, From: *fromRestored, Earliest: v.Trim}
		}
		job = ""
	}
	rq.trim = v.Trim

	live := rq.from
	if job != "" {
		var start *segmentlog.MessageID
		var minTick uint64
		switch {
		case fromRestored != nil:
			start = fromRestored
		case rq.from.Kind == segmentlog.StartEarliest:
			start = &segmentlog.MessageID{}
		case rq.from.Kind == segmentlog.StartAtTimeTick:
			start, minTick = &segmentlog.MessageID{}, rq.from.TimeTick
		}
		if start != nil {
			resp, err := s.readRestored(ctx, job, v, *start, minTick, rq)
			if err != nil {
				return err
			}
			if len(resp.Messages) > 0 {
				writeJSON(w, http.StatusOK, resp)
				return nil
			}
			if minTick == 0 {
				// A concrete position, which the answer's next repeats
				// when nothing of v's own is there yet.
				if live, err = s.sys.LiveStart(ctx, v); err != nil {
					return err
				}
			}
		}
	}
	if v.Created != nil {
		// Earliest and timetick reads start at its create message (nothing
		// of v lands before it), or at the trim points above it.
		rq.earliestID = v.Created.ID
	}
	rq.from = live
	if err := s.mustKnow(ctx, v.PChannel); err != nil {
		return err
	}
	resp, err := s.read(ctx, v.PChannel, rq)
	if err != nil {
		return err
	}
	resp.VChannel = name
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// readRestored reads the restored history of v (restore job) from ID from
// on, keeping messages with a timetick ≥ minTick, within the read's limits.
// It never waits: the history is complete. Next is the position after the
// last message, or, once the history is exhausted, where v's own messages
// begin.
func (s *Server) readRestored(ctx context.Context, job string, v coordinator.VChannel, from segmentlog.MessageID, minTick uint64, q readQuery) (wire.ReadResponse, error) {
	it, err := s.snaps.OpenRestored(ctx, job, v.Name, from)
	if err != nil {
		return wire.ReadResponse{}, err
	}
	defer it.Close()
	resp := wire.ReadResponse{PChannel: v.PChannel, VChannel: v.Name, Messages: []wire.MessageOut{}}
	size := 0
	var last segmentlog.MessageID
	exhausted := false
	for len(resp.Messages) < q.max && size < s.cfg.MaxReadBytes {
		d, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			exhausted = true
			break
		}
		if err != nil {
			if len(resp.Messages) > 0 {
				break
			}
			return wire.ReadResponse{}, err
		}
		if !d.Type.Wanted(q.types) || d.TimeTick < minTick {
			continue
		}
		m := messageOut(d)
		m.Restored = true
		resp.Messages = append(resp.Messages, m)
		size += len(d.Payload)
		last = d.ID
	}
	if exhausted {
		start, err := s.sys.LiveStart(ctx, v)
		if err != nil {
			return wire.ReadResponse{}, err
		}
		resp.Next = start.String()
	} else {
		resp.Next = restoredPrefix + segmentlog.MessageID{Offset: last.Offset, Index: last.Index + 1}.String()
	}
	return resp, nil
}
