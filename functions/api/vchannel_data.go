package api

import (
	"cmp"
	"net/http"
	"strings"

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
	in, err := decodeAppendFor(r.Header.Get("Content-Type"), body, s.limits(), name)
	if err != nil {
		return err
	}
	v, err := s.sys.ActiveVChannel(r.Context(), name)
	if err != nil {
		return err
	}
	return s.appendAndAnswer(w, r, v.PChannel, in, q)
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
	v, err := s.sys.VChannel(ctx, name)
	if err != nil {
		return err
	}
	resp := wire.ReadResponse{PChannel: v.PChannel, VChannel: name, Messages: []wire.MessageOut{}, Next: cmp.Or(from, rq.from.String())}
	resp.Paused, err = s.poll(ctx, rq, func(lim segmentlog.PageLimits) error {
		page, err := s.sys.ReadVChannel(ctx, v, rq.from, fromRestored, rq.types, lim)
		resp.Messages, resp.Next = mapped(page.Messages, messageOut), page.Next.String()
		for i := range resp.Messages {
			resp.Messages[i].Restored = page.Restored
		}
		if page.NextRestored != nil {
			resp.Next = restoredPrefix + page.NextRestored.String()
		}
		return err
	})
	if err != nil {
		return neverWritten(v.PChannel, err)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
