package segmentlog

import (
	"errors"
	"math"
	"testing"
)

// TestParsePosition: every form Position.String prints parses back to
// itself, after: is the next ID, and each refusal is a *PositionError that
// matches ErrBadPosition.
func TestParsePosition(t *testing.T) {
	for _, p := range []Position{Earliest(), Latest(), AtID(MessageID{Offset: 12, Index: 3}),
		AtID(MessageID{Offset: math.MaxUint64, Index: MaxMessages - 1}), AtTimeTick(math.MaxUint64)} {
		got, err := ParsePosition(p.String())
		if err != nil || got != p {
			t.Errorf("%q parsed as %v, %v", p.String(), got, err)
		}
	}
	if got, err := ParsePosition("after:id:8.1048575"); err != nil || got != AtID(MessageID{Offset: 9}) {
		t.Errorf("after:id:8.1048575 parsed as %v, %v; want id:9.0", got, err)
	}
	for _, s := range []string{"", "id:1", "id:01.0", "id:+1.0", "id:1.1048576", "timetick:", "after:earliest",
		"after:after:id:1.0", "after:id:18446744073709551615.1048575", "id:18446744073709551616.0", "tail"} {
		_, err := ParsePosition(s)
		var pe *PositionError
		if !errors.As(err, &pe) || !errors.Is(err, ErrBadPosition) || pe.Input != s {
			t.Errorf("%q: %v; want a *PositionError of it matching ErrBadPosition", s, err)
		}
	}
}
