package api

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/segmentlog"
)

// appendInput is a decoded, validated append.
type appendInput struct {
	msgs   []segmentlog.Message
	expect *uint64
}

// limits are what decodeAppend enforces.
type limits struct {
	maxMessages int
	maxBytes    int
}

// limits are this server's append limits.
func (s *Server) limits() limits { return limits{s.cfg.MaxAppendMessages, s.sc.MaxBatchBytes} }

func (s *Server) handleAppend(w http.ResponseWriter, r *http.Request) error {
	p := r.PathValue("p")
	if err := s.configured(p); err != nil {
		return err
	}
	q, err := parseAppendQuery(r.URL.Query())
	if err != nil {
		return err
	}
	body, err := s.readAppendBody(r)
	if err != nil {
		return err // *http.MaxBytesError: 413
	}
	in, err := decodeAppend(r.Header.Get("Content-Type"), body, s.limits())
	if err != nil {
		return err
	}
	if err := s.sys.CheckTags(r.Context(), p, in.msgs); err != nil {
		return err
	}
	return s.appendAndAnswer(w, r, p, in, q)
}

// readAppendBody reads r's body into a new buffer of its declared length
// (never a reused one: decodeAppendBatch's payloads are that buffer): a
// batch body of a MiB read through io.ReadAll's growing buffer was copied
// and cleared several times over (6 % of the process's CPU in the bench's
// producer phase). A Content-Length above MaxBodyBytes is not trusted with
// an allocation: the MaxBytesReader around the body refuses it anyway.
func (s *Server) readAppendBody(r *http.Request) ([]byte, error) {
	n := r.ContentLength
	if n < 0 || n > s.cfg.MaxBodyBytes {
		return io.ReadAll(r.Body)
	}
	// One byte more than declared, so that a body longer than its
	// Content-Length (which net/http does not pass) still ends in EOF here.
	buf := bytes.NewBuffer(make([]byte, 0, n+bytes.MinRead))
	if _, err := buf.ReadFrom(r.Body); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// appendAndAnswer appends a decoded, validated append to p and answers
// with its acks: the one code of the pchannel and vchannel append routes.
func (s *Server) appendAndAnswer(w http.ResponseWriter, r *http.Request, p string, in appendInput, q appendQuery) error {
	if q.expect != nil {
		if in.expect != nil {
			return errorf(http.StatusBadRequest, wire.CodeMalformed, "expected_offset given both in the body and in the query")
		}
		in.expect = q.expect
	}
	var after *segmentlog.IdemKey
	if q.afterSeq != nil {
		if in.expect != nil {
			return errorf(http.StatusBadRequest, wire.CodeMalformed, "after_seq and expected_offset exclude each other")
		}
		k, err := system.Predecessor(in.msgs, *q.afterSeq)
		if err != nil {
			return err
		}
		after = &k
	}
	start := time.Now()
	term, acks, err := s.sys.Pool().Append(r.Context(), p, in.msgs, in.expect, after)
	if err != nil {
		return err
	}
	s.sys.NoteWritten(p)
	s.metrics.observeAppend(time.Since(start), len(acks))
	resp := wire.AppendResponse{PChannel: p, Term: term, Acks: mapped(acks, ackOut)}
	if strings.Contains(r.Header.Get("Prefer"), wire.PreferAckRuns) {
		resp.Acks, resp.AckRuns = nil, wire.AckRunsOf(resp.Acks)
		w.Header().Set("Preference-Applied", wire.PreferAckRuns)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func ackOut(a segmentlog.Ack) wire.Ack {
	return wire.Ack{Offset: a.ID.Offset, Index: a.ID.Index, TimeTick: a.TimeTick, Duplicate: a.Duplicate}
}

// appendQuery is the query of an append route.
type appendQuery struct {
	expect   *uint64 // expected_offset
	afterSeq *uint64 // after_seq
}

// parseAppendQuery accepts only expected_offset and after_seq.
func parseAppendQuery(q url.Values) (appendQuery, error) {
	if err := onlyQuery(q, "expected_offset", "after_seq"); err != nil {
		return appendQuery{}, err
	}
	var out appendQuery
	for name, dst := range map[string]**uint64{"expected_offset": &out.expect, "after_seq": &out.afterSeq} {
		vs, ok := q[name]
		if !ok {
			continue
		}
		v, err := parseOffset(vs[0])
		if err != nil {
			return appendQuery{}, errorf(http.StatusBadRequest, wire.CodeMalformed, "%s: %v", name, err)
		}
		*dst = &v
	}
	return out, nil
}

// decodeAppend parses and validates an append body of contentType. Every
// failure is an *Error (400, 413 or 415); nothing it accepts can fail the
// writer's own validation.
func decodeAppend(contentType string, body []byte, lim limits) (appendInput, error) {
	return decodeAppendFor(contentType, body, lim, "")
}

// decodeAppendFor is decodeAppend for the append route of vchannel (if not
// empty): a message that names no vchannel is vchannel's, one that names
// another is refused.
func decodeAppendFor(contentType string, body []byte, lim limits, vchannel string) (appendInput, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return appendInput{}, errorf(http.StatusUnsupportedMediaType, wire.CodeUnsupportedType,
			"Content-Type %q: want %s or %s", contentType, wire.ContentTypeJSON, wire.ContentTypeBatch)
	}
	var in appendInput
	switch mt {
	case wire.ContentTypeJSON:
		for k, v := range params {
			if k != "charset" || !strings.EqualFold(v, "utf-8") {
				return appendInput{}, errorf(http.StatusUnsupportedMediaType, wire.CodeUnsupportedType, "Content-Type parameter %s=%s: only charset=utf-8", k, v)
			}
		}
		in, err = decodeAppendJSON(body)
	case wire.ContentTypeBatch:
		if len(params) > 0 {
			return appendInput{}, errorf(http.StatusUnsupportedMediaType, wire.CodeUnsupportedType, "%s takes no parameters", wire.ContentTypeBatch)
		}
		in, err = decodeAppendBatch(body)
	default:
		return appendInput{}, errorf(http.StatusUnsupportedMediaType, wire.CodeUnsupportedType,
			"Content-Type %q: want %s or %s", mt, wire.ContentTypeJSON, wire.ContentTypeBatch)
	}
	if err != nil {
		return appendInput{}, err
	}
	if vchannel != "" {
		for i := range in.msgs {
			switch m := &in.msgs[i]; m.VChannel {
			case "":
				m.VChannel = vchannel
			case vchannel:
			default:
				return appendInput{}, errorf(http.StatusBadRequest, wire.CodeInvalid, "message %d names vchannel %q on the append route of %q", i, m.VChannel, vchannel)
			}
		}
	}
	if err := validateMessages(in.msgs, lim); err != nil {
		return appendInput{}, err
	}
	return in, nil
}

func decodeAppendJSON(body []byte) (appendInput, error) {
	var req wire.AppendRequest
	if err := decodeStrict(body, &req, "append body"); err != nil {
		return appendInput{}, err
	}
	if req.ExpectedOffset != nil && *req.ExpectedOffset > wire.MaxOffset {
		return appendInput{}, errorf(http.StatusBadRequest, wire.CodeMalformed, "expected_offset %d above the largest offset %d", *req.ExpectedOffset, uint64(wire.MaxOffset))
	}
	in := appendInput{msgs: make([]segmentlog.Message, len(req.Messages)), expect: req.ExpectedOffset}
	for i, m := range req.Messages {
		t := segmentlog.TypeData
		if m.Type != "" {
			var err error
			if t, err = segmentlog.ParseMessageType(m.Type); err != nil {
				return appendInput{}, errorf(http.StatusBadRequest, wire.CodeInvalid, "message %d: %v", i, err)
			}
		}
		msg := segmentlog.Message{Type: t, VChannel: m.VChannel, Payload: m.Payload, Properties: m.Properties}
		if m.Key != nil {
			msg.Key = segmentlog.IdemKey{Producer: m.Key.Producer, Epoch: m.Key.Epoch, Seq: m.Key.Seq}
		}
		in.msgs[i] = msg
	}
	return in, nil
}

// decodeAppendBatch takes the messages of a binary batch object; its kind
// must be data, and its term, offset, nonce and timeticks are ignored (the
// writer stamps its own). The payloads are body itself, not a copy: body
// is given up (every route reads each request into a buffer of its own,
// with readAppendBody or io.ReadAll, which nothing reuses; the writer
// keeps the payloads in its cache).
func decodeAppendBatch(body []byte) (appendInput, error) {
	b, err := segmentlog.DecodeBatchAliasing(body)
	if err != nil {
		if errors.Is(err, segmentlog.ErrTooLarge) {
			return appendInput{}, errorf(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "batch: %v", err)
		}
		return appendInput{}, errorf(http.StatusBadRequest, wire.CodeMalformed, "batch: %v", err)
	}
	if b.Kind != segmentlog.KindData {
		return appendInput{}, errorf(http.StatusBadRequest, wire.CodeInvalid, "batch kind %v: only data batches can be appended", b.Kind)
	}
	for i := range b.Messages {
		b.Messages[i].TimeTick = 0
	}
	return appendInput{msgs: b.Messages}, nil
}

// validateMessages applies the writer's rules for user appends up front, so
// that a bad request is a 400 (or 413) that touched nothing.
func validateMessages(msgs []segmentlog.Message, lim limits) error {
	if len(msgs) == 0 {
		return errorf(http.StatusBadRequest, wire.CodeInvalid, "an append needs at least one message")
	}
	if len(msgs) > lim.maxMessages {
		return errorf(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "%d messages; at most %d per append", len(msgs), lim.maxMessages)
	}
	size := 0
	for i := range msgs {
		m := &msgs[i]
		bad := func(format string, args ...any) error {
			return errorf(http.StatusBadRequest, wire.CodeInvalid, "message %d: "+format, append([]any{i}, args...)...)
		}
		if !m.Type.IsData() {
			return bad("type %v cannot be appended: only data, insert and delete", m.Type)
		}
		if err := validName("vchannel", m.VChannel); err != nil {
			return errorf(http.StatusBadRequest, wire.CodeInvalidName, "message %d: %v", i, err)
		}
		if m.TxnID != 0 || m.BroadcastID != "" {
			return bad("transaction and broadcast messages have their own calls")
		}
		if m.Key.Producer == "" && (m.Key.Epoch != 0 || m.Key.Seq != 0) {
			return bad("idempotency key has an epoch or seq but no producer")
		}
		if len(m.Key.Producer) > segmentlog.MaxStringLen || !utf8.ValidString(m.Key.Producer) {
			return bad("producer must be valid UTF-8 of at most %d bytes", segmentlog.MaxStringLen)
		}
		size += len(m.Payload) + len(m.VChannel) + len(m.Key.Producer) + 32
		for k, v := range m.Properties {
			if k == "" || len(k) > segmentlog.MaxStringLen || len(v) > segmentlog.MaxStringLen ||
				!utf8.ValidString(k) || !utf8.ValidString(v) {
				return bad("property %q: keys must be 1..%d bytes and values at most %d, in UTF-8", k, segmentlog.MaxStringLen, segmentlog.MaxStringLen)
			}
			if strings.HasPrefix(k, wire.ReservedPropertyPrefix) {
				return bad("property %q: keys starting with %q are reserved for Cairn", k, wire.ReservedPropertyPrefix)
			}
			size += len(k) + len(v) + 2
		}
	}
	if size > lim.maxBytes {
		return errorf(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "messages take %d bytes; at most %d per append", size, lim.maxBytes)
	}
	return nil
}
