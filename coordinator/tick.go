package coordinator

import "time"

// Hybrid timeticks are physical_ms << tickLogicalBits | logical (DESIGN.md,
// "Vocabulary").
//
// These helpers stand in until segmentlog provides TickOf; they are
// unexported so they can be swapped for it without an API change.
const tickLogicalBits = 18

// tickOf is the smallest timetick of the millisecond of t. Times before the
// Unix epoch map to 0.
func tickOf(t time.Time) uint64 {
	ms := t.UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms) << tickLogicalBits
}

// tickSpan is the width in timeticks of d, in whole milliseconds.
func tickSpan(d time.Duration) uint64 {
	ms := d.Milliseconds()
	if ms < 0 {
		return 0
	}
	return uint64(ms) << tickLogicalBits
}
