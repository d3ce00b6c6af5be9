package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/cas"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// Error is the JSON body of every error answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`

	status     int
	retryAfter time.Duration
	header     http.Header
	// detail is the cause behind a generic Message: the store's or the
	// runtime's own words, which name keys, endpoints and internals. It is
	// logged with Ref, never sent.
	detail string
	// Ref ties an answer with a detail to its log line.
	Ref string `json:"ref,omitempty"`
	// Earliest is the earliest readable position (id:OFFSET.INDEX) on a
	// 410 truncated answer: where a read below a trim point can go on.
	Earliest string `json:"earliest,omitempty"`
	// metricCode, if set, is the "code" label the request is counted
	// under instead of its status (MetricClientClosed).
	metricCode string
}

// MetricClientClosed is the code label of cairn_http_requests_total for a
// request whose body ended early: the client went away mid-body. It is
// answered 400 malformed (if the client still listens), logged at debug
// level, and never counted as a server error.
const MetricClientClosed = "client_closed"

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// errorf builds an error answer. A string argument over maxQuoted bytes,
// or an error whose text is over 4 × maxQuoted, is cut to that prefix
// (clipped): a message quotes what the client sent, and a client can send
// megabytes.
func errorf(status int, code, format string, args ...any) *Error {
	for i, a := range args {
		switch v := a.(type) {
		case string:
			if len(v) > maxQuoted {
				args[i] = clipped{v, maxQuoted}
			}
		case error:
			if msg := v.Error(); len(msg) > 4*maxQuoted {
				args[i] = clipped{msg, 4 * maxQuoted}
			}
		}
	}
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), status: status}
}

// maxQuoted is the most of a client's string an error message quotes: a
// name of segmentlog.MaxNameLen bytes still appears whole.
const maxQuoted = segmentlog.MaxNameLen

// clipped formats the first n bytes of s (cut on a rune boundary), an
// ellipsis and s's length; %q quotes the prefix.
type clipped struct {
	s string
	n int
}

func (c clipped) Format(f fmt.State, verb rune) {
	n := min(c.n, len(c.s))
	for n > 0 && n < len(c.s) && !utf8.RuneStart(c.s[n]) {
		n--
	}
	if verb == 'q' {
		fmt.Fprintf(f, "%q", c.s[:n])
	} else {
		fmt.Fprint(f, c.s[:n])
	}
	fmt.Fprintf(f, "… (%d bytes)", len(c.s))
}

// validName is segmentlog.ValidateName with a name too long for it quoted
// only in part (segmentlog quotes the whole name).
func validName(kind, name string) error {
	if len(name) > segmentlog.MaxNameLen {
		return fmt.Errorf("%w: %s %q: longer than %d bytes", segmentlog.ErrInvalidName, kind, clipped{name, maxQuoted}, segmentlog.MaxNameLen)
	}
	return segmentlog.ValidateName(kind, name)
}

// classify maps an error of a handler onto the answer. Sentinels of the
// core are matched with errors.Is/As only.
func classify(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var te *segmentlog.TruncatedError
	if errors.As(err, &te) {
		e := errorf(http.StatusGone, wire.CodeTruncated, "position id:%v was trimmed; the earliest readable position is id:%v", te.From, te.Earliest)
		e.Earliest = segmentlog.AtID(te.Earliest).String()
		return e
	}
	var om *system.OffsetMismatchError
	if errors.As(err, &om) {
		e := errorf(http.StatusPreconditionFailed, wire.CodeOffsetMismatch, "%v", om)
		e.header = http.Header{"Cairn-Next-Offset": {strconv.FormatUint(om.Tail, 10)}}
		return e
	}
	var busy *system.BusyError
	var mbe *http.MaxBytesError
	var cbe *clientBodyError
	switch {
	case errors.As(err, &cbe) && errors.Is(err, os.ErrDeadlineExceeded):
		return errorf(http.StatusRequestTimeout, wire.CodeRequestTimeout, "the request body did not arrive within the body timeout")
	case errors.As(err, &cbe):
		e := errorf(http.StatusBadRequest, wire.CodeMalformed, "the request body ended before its length: the client stopped sending")
		e.metricCode = MetricClientClosed
		return e
	case errors.As(err, &busy):
		e := errorf(http.StatusServiceUnavailable, wire.CodeLeaseHeld, "%v", busy)
		e.retryAfter = busy.RetryAfter
		return e
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "request body over %d bytes", mbe.Limit)
	}
	for _, row := range sentinelAnswers {
		for _, sentinel := range row.errs {
			if errors.Is(err, sentinel) {
				return row.answer(err, sentinel)
			}
		}
	}
	if objstore.IsRetryable(err) || errors.Is(err, context.DeadlineExceeded) {
		e := generic(http.StatusServiceUnavailable, wire.CodeUnavailable, "the object store failed or did not answer in time; retry", err)
		e.retryAfter = time.Second
		return e
	}
	return generic(http.StatusInternalServerError, wire.CodeInternal, "internal error", err)
}

// sentinelAnswer is the answer to an error wrapping one of errs.
type sentinelAnswer struct {
	errs   []error
	status int
	code   string
	// message: tidied (the text from the sentinel on), whole (err's text:
	// fenced, corrupt and shutdown errors say where), or, if hidden is
	// set, hidden and a ref (generic).
	whole  bool
	hidden string
	retry  bool // Retry-After: 1 s
}

func (a sentinelAnswer) answer(err, sentinel error) *Error {
	var e *Error
	switch {
	case a.hidden != "":
		e = generic(a.status, a.code, a.hidden, err)
	case a.whole:
		e = errorf(a.status, a.code, "%v", err)
	default:
		e = errorf(a.status, a.code, "%v", tidy(err, sentinel))
	}
	if a.retry {
		e.retryAfter = time.Second
	}
	return e
}

// sentinelAnswers are the answers to the core's sentinels, the first row
// that matches wins (so order matters: an unknown outcome may wrap
// ErrFenced). Read only.
var sentinelAnswers = []sentinelAnswer{
	{errs: []error{system.ErrOutOfSequence}, status: http.StatusPreconditionFailed, code: wire.CodeOutOfSequence},
	{errs: []error{system.ErrInvalid, system.ErrNoHistory}, status: http.StatusBadRequest, code: wire.CodeInvalid},
	{errs: []error{segmentlog.ErrInvalidName}, status: http.StatusBadRequest, code: wire.CodeInvalidName},
	{errs: []error{segmentlog.ErrTooLarge}, status: http.StatusRequestEntityTooLarge, code: wire.CodeTooLarge},
	{errs: []error{segmentlog.ErrOutcomeUnknown}, status: http.StatusServiceUnavailable, code: wire.CodeOutcomeUnknown, retry: true,
		hidden: "the append may or may not have landed; retry with the same idempotency keys to learn the IDs"},
	{errs: []error{cas.ErrOutcomeUnknown}, status: http.StatusServiceUnavailable, code: wire.CodeOutcomeUnknown, retry: true,
		hidden: "the change may or may not have been made; read the record back, or retry"},
	{errs: []error{segmentlog.ErrFenced, coordinator.ErrLeaseLost}, status: http.StatusConflict, code: wire.CodeFenced, whole: true},
	{errs: []error{coordinator.ErrNoVChannel}, status: http.StatusNotFound, code: wire.CodeUnknownVChannel},
	{errs: []error{coordinator.ErrUnknownPChannel}, status: http.StatusNotFound, code: wire.CodeUnknownPChannel},
	{errs: []error{coordinator.ErrVChannelDropped}, status: http.StatusConflict, code: wire.CodeVChannelDropped},
	{errs: []error{coordinator.ErrBindingConflict}, status: http.StatusConflict, code: wire.CodeBindingConflict},
	{errs: []error{coordinator.ErrNoHolder}, status: http.StatusServiceUnavailable, code: wire.CodeNoHolder, retry: true},
	{errs: []error{coordinator.ErrNoBroadcast}, status: http.StatusNotFound, code: wire.CodeUnknownBroadcast},
	{errs: []error{coordinator.ErrBroadcastConflict}, status: http.StatusConflict, code: wire.CodeExists},
	{errs: []error{coordinator.ErrInvalidBroadcast}, status: http.StatusBadRequest, code: wire.CodeInvalid},
	{errs: []error{coordinator.ErrVChannelNotReady}, status: http.StatusConflict, code: wire.CodeWrongState},
	{errs: []error{segmentlog.ErrTxnNotFound}, status: http.StatusNotFound, code: wire.CodeUnknownTxn},
	// A shared-mode transaction being committed: it takes no more appends
	// and cannot be rolled back; nothing of this call was written.
	{errs: []error{segmentlog.ErrTxnSealed}, status: http.StatusConflict, code: wire.CodeWrongState},
	// Other writers kept filling the tail (a shared-mode commit): nothing
	// was written, retry.
	{errs: []error{segmentlog.ErrContended}, status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, retry: true},
	{errs: []error{segmentlog.ErrTxnExpired}, status: http.StatusConflict, code: wire.CodeTxnExpired},
	{errs: []error{segmentlog.ErrTxnInvalid}, status: http.StatusBadRequest, code: wire.CodeInvalid},
	{errs: []error{snapshot.ErrInvalidPolicy}, status: http.StatusBadRequest, code: wire.CodeInvalid},
	{errs: []error{snapshot.ErrNotFound}, status: http.StatusNotFound, code: wire.CodeUnknownSnapshot},
	{errs: []error{snapshot.ErrExists}, status: http.StatusConflict, code: wire.CodeExists},
	{errs: []error{snapshot.ErrState}, status: http.StatusConflict, code: wire.CodeWrongState},
	{errs: []error{snapshot.ErrCorrupt, snapshot.ErrMissingSegment}, status: http.StatusInternalServerError, code: wire.CodeCorrupt, whole: true},
	{errs: []error{segmentlog.ErrTruncated}, status: http.StatusGone, code: wire.CodeTruncated},
	{errs: []error{segmentlog.ErrCorrupt, segmentlog.ErrInvariant, coordinator.ErrCorrupt, objstore.ErrCorrupt},
		status: http.StatusInternalServerError, code: wire.CodeCorrupt, whole: true},
	{errs: []error{coordinator.ErrBroadcastBusy}, status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, retry: true},
	{errs: []error{system.ErrShuttingDown, segmentlog.ErrClosed, segmentlog.ErrLeaseExpired, coordinator.ErrLeaseHeld},
		status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, whole: true, retry: true},
}

// tidy is err's text from its sentinel on, without the sentinel's package
// prefix: "coordinator: describe vchannel: coordinator: no such vchannel:
// x" says "no such vchannel: x". The layers' wrapping is for logs; an
// answer says what is wrong in one clause.
func tidy(err, sentinel error) error {
	msg, s := err.Error(), sentinel.Error()
	if i := strings.LastIndex(msg, s); i >= 0 {
		msg = msg[i:]
	}
	if pkg, rest, ok := strings.Cut(msg, ": "); ok && pkg != "" && strings.Trim(pkg, "abcdefghijklmnopqrstuvwxyz") == "" {
		msg = rest
	}
	return errors.New(msg)
}

// generic builds an answer whose message is msg and a reference, not err's
// text: the cause goes to the log only (Server.wrap), under the same Ref.
func generic(status int, code, msg string, err error) *Error {
	ref := strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	return &Error{Code: code, Message: msg + " (ref " + ref + ")", status: status, detail: err.Error(), Ref: ref}
}

// writeError answers with err as JSON.
func writeError(w http.ResponseWriter, err error) *Error {
	e := classify(err)
	h := w.Header()
	for k, v := range e.header {
		h[k] = v
	}
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds(e.retryAfter)))
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(e)
	return e
}

// retryAfterSeconds rounds d up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	s := math.Ceil(d.Seconds())
	return int(max(1, min(s, 3600)))
}

// writeJSON answers 200 with v.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
