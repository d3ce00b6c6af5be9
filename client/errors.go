package client

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
)

// Sentinel errors. Every error of the SDK that comes from the server is an
// *Error, which matches one of these with errors.Is (by its code); errors
// the SDK makes itself wrap one of them. Check with errors.Is, never by
// string.
var (
	// ErrInvalid: the server refused the request as malformed or not
	// allowed (400 malformed, invalid_name, invalid; 415), or the SDK did
	// before sending it. Not retried.
	ErrInvalid = errors.New("invalid request")
	// ErrUnauthorized: the bearer token is missing or wrong (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotFound: no such pchannel (404 unknown_pchannel: never written),
	// vchannel, snapshot, restore job, open transaction or broadcast (404
	// unknown_vchannel, unknown_snapshot, unknown_restore, unknown_txn,
	// unknown_broadcast), or route (404 not_found: e.g. a server older
	// than this SDK), or 405.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request conflicts with what exists (409 exists: a
	// snapshot name, restore job ID, restore target or broadcast ID taken;
	// vchannel_dropped; binding_conflict; wrong_state; txn_expired).
	// Not retried.
	ErrConflict = errors.New("conflict")
	// ErrFenced: a newer term took the pchannel (409); the append was not
	// delivered.
	ErrFenced = errors.New("fenced by a newer term")
	// ErrTruncated: the read position lies below a trim point (410):
	// Error.Earliest, or Earliest(err), is where to read from instead. (A
	// server without a segment reader says so for any position below the
	// flush checkpoint, without Earliest.)
	ErrTruncated = errors.New("position truncated")
	// ErrOffsetMismatch: a conditional append's expected offset was not the
	// tail (412); nothing was written. Error.NextOffset has the tail.
	ErrOffsetMismatch = errors.New("expected offset is not the tail")
	// ErrOutOfSequence: an append with AppendOptions.AfterSeq came before
	// the message it must follow was acked or queued (412
	// out_of_sequence); nothing was written. A Producer handles it itself.
	ErrOutOfSequence = errors.New("append out of sequence")
	// ErrTooLarge: a message or request is over the server's limits (413),
	// or a message is over ProducerConfig.MaxBatchBytes.
	ErrTooLarge = errors.New("too large")
	// ErrUnavailable: the server was busy (429 too_many_waiters, 503
	// lease_held or unavailable, 502/504 from a proxy) on every attempt
	// the retry policy allowed.
	ErrUnavailable = errors.New("unavailable")
	// ErrOutcomeUnknown: an append may or may not have landed (503
	// outcome_unknown, or a transport failure or timeout after the request
	// may have reached the server) and the SDK could not settle it by
	// retrying: it was out of attempts, or the append carried no
	// idempotency keys or an expected offset, which make a blind retry
	// unsafe.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrInternal: the server failed (500 internal or corrupt).
	ErrInternal = errors.New("internal server error")
	// ErrClosed: the Producer was closed before the message was sent.
	ErrClosed = errors.New("producer closed")
	// ErrStopped: the Producer stopped at an earlier failed batch, and did
	// not send this message (see Producer).
	ErrStopped = errors.New("producer stopped")
)

// Error is an error answer of the server: its HTTP status, the JSON body's
// code and message, and the Retry-After it carried. It matches a sentinel
// with errors.Is:
//
//	malformed, invalid_name, invalid, unsupported_media_type   ErrInvalid
//	unauthorized                                                ErrUnauthorized
//	not_found, unknown_pchannel, unknown_vchannel,              ErrNotFound
//	unknown_snapshot, unknown_restore, unknown_txn,
//	unknown_broadcast, method_not_allowed
//	exists, vchannel_dropped, binding_conflict, wrong_state,    ErrConflict
//	txn_expired
//	fenced                                                      ErrFenced
//	truncated                                                   ErrTruncated
//	offset_mismatch                                             ErrOffsetMismatch
//	out_of_sequence                                             ErrOutOfSequence
//	too_large                                                   ErrTooLarge
//	too_many_waiters, lease_held, unavailable, no_holder        ErrUnavailable
//	(and 502, 504)
//	outcome_unknown                                             ErrOutcomeUnknown
//	internal, corrupt                                           ErrInternal
//
// An unknown code is matched by its status class (4xx ErrInvalid, 5xx
// ErrInternal), so that a newer server's codes still classify.
type Error struct {
	Method string // "POST"
	Path   string // "/v1/pchannels/p0/append"
	Status int    // HTTP status
	// Code is the server's error code ("too_large"); for an answer without
	// a JSON error body, "http_<status>".
	Code    string
	Message string
	// Ref is set on answers to store failures and unexpected errors: the
	// server logged the cause under it.
	Ref        string
	RetryAfter time.Duration // 0 if the answer had no Retry-After
	// NextOffset is the pchannel's tail from the Cairn-Next-Offset header
	// of a 412 offset_mismatch; HasNextOffset says whether there was one.
	NextOffset    uint64
	HasNextOffset bool
	// Earliest is the earliest readable position (id:OFFSET.INDEX) of a
	// 410 truncated answer to a read below a trim point; "" otherwise.
	Earliest string
}

// EarliestOf returns the earliest readable position an ErrTruncated error
// carries, and whether it carries one: read from there to go on.
func EarliestOf(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) && e.Earliest != "" {
		return e.Earliest, true
	}
	return "", false
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, e.Code, e.Message)
}

// Is matches the sentinel of e's code (see Error).
func (e *Error) Is(target error) bool { return target == e.sentinel() }

func (e *Error) sentinel() error {
	switch e.Code {
	case wire.CodeMalformed, wire.CodeInvalidName, wire.CodeInvalid, wire.CodeUnsupportedType:
		return ErrInvalid
	case wire.CodeUnauthorized:
		return ErrUnauthorized
	case wire.CodeNotFound, wire.CodeUnknownPChannel, wire.CodeUnknownVChannel, wire.CodeUnknownSnapshot, wire.CodeUnknownRestore, wire.CodeUnknownTxn, wire.CodeUnknownBroadcast, wire.CodeMethodNotAllowed:
		return ErrNotFound
	case wire.CodeExists, wire.CodeVChannelDropped, wire.CodeBindingConflict, wire.CodeWrongState, wire.CodeTxnExpired:
		return ErrConflict
	case wire.CodeFenced:
		return ErrFenced
	case wire.CodeTruncated:
		return ErrTruncated
	case wire.CodeOffsetMismatch:
		return ErrOffsetMismatch
	case wire.CodeOutOfSequence:
		return ErrOutOfSequence
	case wire.CodeTooLarge:
		return ErrTooLarge
	case wire.CodeTooManyWaiters, wire.CodeLeaseHeld, wire.CodeUnavailable, wire.CodeNoHolder:
		return ErrUnavailable
	case wire.CodeOutcomeUnknown:
		return ErrOutcomeUnknown
	case wire.CodeInternal, wire.CodeCorrupt:
		return ErrInternal
	}
	switch {
	case e.Status == http.StatusBadGateway || e.Status == http.StatusGatewayTimeout ||
		e.Status == http.StatusServiceUnavailable || e.Status == http.StatusTooManyRequests:
		return ErrUnavailable
	case e.Status >= 500:
		return ErrInternal
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return ErrUnauthorized
	case e.Status == http.StatusNotFound:
		return ErrNotFound
	case e.Status == http.StatusConflict:
		return ErrConflict
	}
	return ErrInvalid
}

// retryable reports whether the answer is a busy signal worth another
// attempt: 429, 502, 503 and 504.
func (e *Error) retryable() bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// mayHaveLanded reports whether a retryable answer leaves open that the
// request had an effect: lease_held and too_many_waiters prove it had none.
func (e *Error) mayHaveLanded() bool {
	switch e.Code {
	case wire.CodeLeaseHeld, wire.CodeTooManyWaiters:
		return false
	}
	return e.retryable()
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date.
func parseRetryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(min(s, 3600)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(t.Sub(now), 0), time.Hour)
	}
	return 0
}
