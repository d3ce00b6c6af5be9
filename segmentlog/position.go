package segmentlog

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// ErrBadPosition: a position string that ParsePosition refuses. The error
// is a *PositionError.
var ErrBadPosition = errors.New("segmentlog: bad position")

// PositionError says why ParsePosition refused Input.
type PositionError struct {
	Input, Why string
}

func (e *PositionError) Error() string {
	return strconv.Quote(e.Input) + ": " + e.Why + " (want earliest, latest, id:OFFSET.INDEX, after:id:OFFSET.INDEX or timetick:T)"
}

// Is makes a *PositionError match ErrBadPosition.
func (e *PositionError) Is(target error) bool { return target == ErrBadPosition }

// ParsePosition parses what Position.String prints — "earliest", "latest",
// "id:OFFSET.INDEX", "timetick:T" — and "after:id:OFFSET.INDEX", the ID
// after that one (NextID). Numbers are decimal without sign or leading
// zeros, and an index is below MaxMessages, so what parses prints back the
// same. A refusal is a *PositionError.
func ParsePosition(s string) (Position, error) {
	bad := func(why string) (Position, error) { return Position{}, &PositionError{Input: s, Why: why} }
	if rest, ok := strings.CutPrefix(s, "after:"); ok {
		if !strings.HasPrefix(rest, "id:") {
			return bad("after: takes an ID")
		}
		pos, err := ParsePosition(rest)
		switch {
		case err != nil:
			return bad(err.(*PositionError).Why)
		case pos.ID.Offset == math.MaxUint64 && pos.ID.Index == MaxMessages-1:
			return bad("no ID comes after it")
		}
		return AtID(NextID(pos.ID)), nil
	}
	switch {
	case s == "earliest":
		return Earliest(), nil
	case s == "latest":
		return Latest(), nil
	case strings.HasPrefix(s, "id:"):
		o, i, ok := strings.Cut(s[len("id:"):], ".")
		if !ok {
			return bad("an ID is OFFSET.INDEX")
		}
		off, err := ParseDecimal(o, math.MaxUint64)
		if err != nil {
			return bad("offset: " + err.Error())
		}
		idx, err := ParseDecimal(i, MaxMessages-1)
		if err != nil {
			return bad("index: " + err.Error())
		}
		return AtID(MessageID{Offset: off, Index: uint32(idx)}), nil
	case strings.HasPrefix(s, "timetick:"):
		t, err := ParseDecimal(s[len("timetick:"):], math.MaxUint64)
		if err != nil {
			return bad("timetick: " + err.Error())
		}
		return AtTimeTick(t), nil
	}
	return bad("unknown form")
}

var (
	errNotDecimal = errors.New("not a decimal number without sign or leading zeros")
	errOutOfRange = errors.New("out of range")
)

// ParseDecimal parses a canonical unsigned decimal (no sign, no leading
// zeros) up to limit: the numbers of positions, offsets and IDs.
func ParseDecimal(s string, limit uint64) (uint64, error) {
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
