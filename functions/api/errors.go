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
	case errors.Is(err, system.ErrOutOfSequence):
		return errorf(http.StatusPreconditionFailed, wire.CodeOutOfSequence, "%v", tidy(err, system.ErrOutOfSequence))
	case errors.Is(err, system.ErrInvalidRestore):
		return errorf(http.StatusBadRequest, wire.CodeInvalid, "%v", tidy(err, system.ErrInvalidRestore))
	case errors.Is(err, segmentlog.ErrInvalidName):
		return errorf(http.StatusBadRequest, wire.CodeInvalidName, "%v", tidy(err, segmentlog.ErrInvalidName))
	case errors.Is(err, segmentlog.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "%v", tidy(err, segmentlog.ErrTooLarge))
	case errors.Is(err, segmentlog.ErrOutcomeUnknown):
		// Checked before ErrFenced: an unknown outcome may wrap either.
		e := generic(http.StatusServiceUnavailable, wire.CodeOutcomeUnknown, "the append may or may not have landed; retry with the same idempotency keys to learn the IDs", err)
		e.retryAfter = time.Second
		return e
	case errors.Is(err, segmentlog.ErrFenced), errors.Is(err, coordinator.ErrLeaseLost):
		return errorf(http.StatusConflict, wire.CodeFenced, "%v", err)
	case errors.Is(err, coordinator.ErrNoVChannel):
		return errorf(http.StatusNotFound, wire.CodeUnknownVChannel, "%v", tidy(err, coordinator.ErrNoVChannel))
	case errors.Is(err, coordinator.ErrUnknownPChannel):
		return errorf(http.StatusNotFound, wire.CodeUnknownPChannel, "%v", tidy(err, coordinator.ErrUnknownPChannel))
	case errors.Is(err, coordinator.ErrVChannelDropped):
		return errorf(http.StatusConflict, wire.CodeVChannelDropped, "%v", tidy(err, coordinator.ErrVChannelDropped))
	case errors.Is(err, coordinator.ErrBindingConflict):
		return errorf(http.StatusConflict, wire.CodeBindingConflict, "%v", tidy(err, coordinator.ErrBindingConflict))
	case errors.Is(err, coordinator.ErrNoHolder):
		e := errorf(http.StatusServiceUnavailable, wire.CodeNoHolder, "%v", tidy(err, coordinator.ErrNoHolder))
		e.retryAfter = time.Second
		return e
	case errors.Is(err, coordinator.ErrNoBroadcast):
		return errorf(http.StatusNotFound, wire.CodeUnknownBroadcast, "%v", tidy(err, coordinator.ErrNoBroadcast))
	case errors.Is(err, coordinator.ErrBroadcastConflict):
		return errorf(http.StatusConflict, wire.CodeExists, "%v", tidy(err, coordinator.ErrBroadcastConflict))
	case errors.Is(err, coordinator.ErrInvalidBroadcast):
		return errorf(http.StatusBadRequest, wire.CodeInvalid, "%v", tidy(err, coordinator.ErrInvalidBroadcast))
	case errors.Is(err, coordinator.ErrVChannelNotReady):
		return errorf(http.StatusConflict, wire.CodeWrongState, "%v", tidy(err, coordinator.ErrVChannelNotReady))
	case errors.Is(err, segmentlog.ErrTxnNotFound):
		return errorf(http.StatusNotFound, wire.CodeUnknownTxn, "%v", tidy(err, segmentlog.ErrTxnNotFound))
	case errors.Is(err, segmentlog.ErrTxnSealed):
		// A shared-mode transaction being committed: it takes no more
		// appends and cannot be rolled back; nothing of this call was written.
		return errorf(http.StatusConflict, wire.CodeWrongState, "%v", tidy(err, segmentlog.ErrTxnSealed))
	case errors.Is(err, segmentlog.ErrContended):
		// Other writers kept filling the tail (a shared-mode commit):
		// nothing was written, retry.
		e := errorf(http.StatusServiceUnavailable, wire.CodeUnavailable, "%v", tidy(err, segmentlog.ErrContended))
		e.retryAfter = time.Second
		return e
	case errors.Is(err, segmentlog.ErrTxnExpired):
		return errorf(http.StatusConflict, wire.CodeTxnExpired, "%v", tidy(err, segmentlog.ErrTxnExpired))
	case errors.Is(err, segmentlog.ErrTxnInvalid):
		return errorf(http.StatusBadRequest, wire.CodeInvalid, "%v", tidy(err, segmentlog.ErrTxnInvalid))
	case errors.Is(err, snapshot.ErrInvalidPolicy):
		return errorf(http.StatusBadRequest, wire.CodeInvalid, "%v", tidy(err, snapshot.ErrInvalidPolicy))
	case errors.Is(err, snapshot.ErrNotFound):
		return errorf(http.StatusNotFound, wire.CodeUnknownSnapshot, "%v", tidy(err, snapshot.ErrNotFound))
	case errors.Is(err, snapshot.ErrExists):
		return errorf(http.StatusConflict, wire.CodeExists, "%v", tidy(err, snapshot.ErrExists))
	case errors.Is(err, snapshot.ErrState):
		return errorf(http.StatusConflict, wire.CodeWrongState, "%v", tidy(err, snapshot.ErrState))
	case errors.Is(err, snapshot.ErrCorrupt), errors.Is(err, snapshot.ErrMissingSegment):
		return errorf(http.StatusInternalServerError, wire.CodeCorrupt, "%v", err)
	case errors.Is(err, segmentlog.ErrTruncated):
		return errorf(http.StatusGone, wire.CodeTruncated, "%v", tidy(err, segmentlog.ErrTruncated))
	case errors.Is(err, segmentlog.ErrCorrupt), errors.Is(err, segmentlog.ErrInvariant),
		errors.Is(err, coordinator.ErrCorrupt), errors.Is(err, objstore.ErrCorrupt):
		return errorf(http.StatusInternalServerError, wire.CodeCorrupt, "%v", err)
	case errors.Is(err, coordinator.ErrBroadcastBusy):
		e := errorf(http.StatusServiceUnavailable, wire.CodeUnavailable, "%v", tidy(err, coordinator.ErrBroadcastBusy))
		e.retryAfter = time.Second
		return e
	case errors.Is(err, system.ErrShuttingDown), errors.Is(err, segmentlog.ErrClosed),
		errors.Is(err, segmentlog.ErrLeaseExpired), errors.Is(err, coordinator.ErrLeaseHeld):
		e := errorf(http.StatusServiceUnavailable, wire.CodeUnavailable, "%v", err)
		e.retryAfter = time.Second
		return e
	case objstore.IsRetryable(err), errors.Is(err, context.DeadlineExceeded):
		e := generic(http.StatusServiceUnavailable, wire.CodeUnavailable, "the object store failed or did not answer in time; retry", err)
		e.retryAfter = time.Second
		return e
	}
	return generic(http.StatusInternalServerError, wire.CodeInternal, "internal error", err)
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
