package client

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// FuzzAnswerError feeds the SDK's decoder of error answers (the only
// answer decoding beyond json.Unmarshal into a typed struct) arbitrary
// statuses, bodies and headers, as a broken proxy or a hostile server could
// send. It never panics, and always yields an *Error with a code and a
// message, that matches exactly one sentinel, with a Retry-After in
// [0, 1h].
//
//	go test ./client -run '^$' -fuzz FuzzAnswerError -fuzztime 1m
func FuzzAnswerError(f *testing.F) {
	f.Add(409, `{"code":"fenced","message":"fenced by term 4","ref":"r-1"}`, "", "17")
	f.Add(503, `{"code":"unavailable","message":"busy"}`, "2", "")
	f.Add(429, "slow down\n", "Wed, 21 Oct 2026 07:28:00 GMT", "")
	f.Add(502, "", "-5", "x")
	f.Add(404, `{"code":"","message":"x"}`, "99999999999999999999", "18446744073709551616")
	now := time.Date(2026, 10, 21, 7, 0, 0, 0, time.UTC)
	c := &Client{now: func() time.Time { return now }}
	sentinels := []error{ErrInvalid, ErrUnauthorized, ErrNotFound, ErrConflict, ErrFenced, ErrTruncated,
		ErrOffsetMismatch, ErrTooLarge, ErrUnavailable, ErrOutcomeUnknown, ErrInternal}
	f.Fuzz(func(t *testing.T, status int, body, retryAfter, nextOffset string) {
		res := &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader([]byte(body)))}
		res.Header.Set("Retry-After", retryAfter)
		res.Header.Set("Cairn-Next-Offset", nextOffset)
		e := c.answerError(request{method: "GET", path: "/v1/x"}, res)
		if e == nil || e.Code == "" || e.Message == "" || e.Status != status {
			t.Fatalf("answer decoded to %+v", e)
		}
		if e.RetryAfter < 0 || e.RetryAfter > time.Hour {
			t.Fatalf("Retry-After %q gave %v", retryAfter, e.RetryAfter)
		}
		matched := 0
		for _, s := range sentinels {
			if errors.Is(e, s) {
				matched++
			}
		}
		if matched != 1 {
			t.Fatalf("%+v matches %d sentinels, want 1", e, matched)
		}
	})
}
