package testkit

import (
	"errors"
	"testing"
	"time"
)

// pollMax is the longest pause between two looks of Eventually.
const pollMax = 20 * time.Millisecond

// Eventually calls cond until it returns true and fails tb if it has not
// within the deadline, naming what it waited for. It looks at once, then
// after pauses that grow from 1 ms to 20 ms, and stops early when the test
// ends. The deadline bounds a wait; it is never a test's pass condition.
//
// cond runs on the caller's goroutine, so it may fail tb itself, at once,
// when the wait has become hopeless (the server it waits for exited).
func Eventually(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	EventuallyNil(tb, within, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// EventuallyNil calls f until it returns nil and fails tb if it has not
// within the deadline, with what it waited for and f's last error (so f
// can describe the state it saw). It polls as Eventually does, and f,
// like Eventually's cond, may fail tb itself.
func EventuallyNil(tb testing.TB, within time.Duration, what string, f func() error) {
	tb.Helper()
	err := poll(tb, within, f)
	switch {
	case err == nil:
	case errors.Is(err, errNotYet):
		tb.Fatalf("%s: not within %v", what, within)
	case errors.Is(err, errEnded):
		tb.Fatalf("%s: the test ended while waiting", what)
	default:
		tb.Fatalf("%s: not within %v: %v", what, within, err)
	}
}

// Within polls cond as Eventually does and reports whether it held within
// the deadline, failing nothing: for a test that accepts either outcome
// (a zombie that stops, or else must keep its promises).
func Within(tb testing.TB, within time.Duration, cond func() bool) bool {
	tb.Helper()
	return poll(tb, within, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}) == nil
}

// poll calls f until it returns nil, the deadline passes or the test ends;
// it returns f's last error (errEnded if the test ended).
func poll(tb testing.TB, within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	pause := time.Millisecond
	for {
		err := f()
		if err == nil || !time.Now().Before(deadline) {
			return err
		}
		select {
		case <-time.After(min(pause, time.Until(deadline))):
		case <-tb.Context().Done():
			return errEnded
		}
		pause = min(2*pause, pollMax)
	}
}

var (
	errNotYet = errors.New("not yet")            // a condition does not hold yet
	errEnded  = errors.New("the test has ended") // tb's context is done
)

// Await waits until ch is closed (or receives) and fails tb if it has not
// within the deadline, naming what it waited for. A test waits so for a
// hook the code under test fires when it reaches a point: a goroutine
// that parks, a long poll that starts waiting.
func Await[T any](tb testing.TB, within time.Duration, what string, ch <-chan T) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(within):
		tb.Fatalf("%s: not within %v", what, within)
	case <-tb.Context().Done():
		tb.Fatalf("%s: the test ended while waiting", what)
	}
}
