package segmentlog

import (
	"fmt"
	"time"
)

// LogicalBits is the width of the logical part of a hybrid timetick:
// tick = physical_ms << LogicalBits | logical.
const LogicalBits = 18

// TickOf is the first timetick of the millisecond of t.
func TickOf(t time.Time) uint64 {
	ms := t.UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms) << LogicalBits
}

// TickSpan is the number of timeticks in d.
func TickSpan(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64(d.Milliseconds()) << LogicalBits
}

// TickTime is the wall-clock millisecond a timetick belongs to.
func TickTime(tick uint64) time.Time {
	return time.UnixMilli(int64(tick >> LogicalBits))
}

// tickClock issues strictly increasing timeticks within [floor+1, max]:
// max(now, last+1), as docs/protocol.md "Append" rule 4 requires. Not safe for
// concurrent use; the Writer guards it with its mutex.
type tickClock struct {
	last uint64 // the last tick issued (or the floor)
	max  uint64 // tt_max of the lease
}

// next issues one tick. It fails when the lease's tt_max would be passed:
// the holder must renew before it may go on.
func (c *tickClock) next(now time.Time) (uint64, error) {
	t := max(TickOf(now), c.last+1)
	if t > c.max {
		return 0, fmt.Errorf("%w: timetick %d would pass the lease's tt_max %d (lease not renewed)", ErrLeaseExpired, t, c.max)
	}
	c.last = t
	return t, nil
}
