package wire

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// randomAcks returns n acks as an append answers them: runs of consecutive
// IDs and ticks in a few batches, some duplicates (the first copy's ID),
// and indexes and ticks at the top of their ranges.
func randomAcks(rng *rand.Rand, n int) []Ack {
	acks := make([]Ack, 0, n)
	off, idx, tick := rng.Uint64N(1000), uint32(0), uint64(1)<<40
	if rng.IntN(4) == 0 {
		idx, tick = math.MaxUint32-uint32(rng.IntN(3)), math.MaxUint64-uint64(rng.IntN(3))
	}
	for len(acks) < n {
		switch rng.IntN(10) {
		case 0: // a duplicate: an earlier copy's ack
			acks = append(acks, Ack{Offset: rng.Uint64N(off + 1), Index: rng.Uint32N(50), TimeTick: rng.Uint64(), Duplicate: true})
			continue
		case 1: // the next batch
			off, idx, tick = off+1, 0, tick+uint64(rng.IntN(5))
		}
		acks = append(acks, Ack{Offset: off, Index: idx, TimeTick: tick})
		idx, tick = idx+1, tick+1 // wraps at the top: a new run starts there
	}
	return acks
}

// TestAckRunsRoundTrip: grouping acks into runs and expanding them gives
// the acks back, for answers of any shape; a batch counting up is one run.
func TestAckRunsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		acks := randomAcks(rng, 1+rng.IntN(300))
		runs := AckRunsOf(acks)
		got, err := ExpandAckRuns(runs, len(acks))
		if err != nil || !reflect.DeepEqual(got, acks) {
			t.Fatalf("%d acks → %d runs → %v, %v", len(acks), len(runs), err, got)
		}
	}
	one := make([]Ack, 900)
	for i := range one {
		one[i] = Ack{Offset: 12, Index: uint32(i), TimeTick: 1000 + uint64(i)}
	}
	if runs := AckRunsOf(one); len(runs) != 1 || runs[0].Count != 900 {
		t.Fatalf("a batch of 900 acks counting up: %+v, want one run", runs)
	}
}

// TestExpandAckRunsRefuses: runs that do not stand for exactly the
// messages sent, or that pass an index's or timetick's range, are an
// error wrapping ErrBadAckRuns, never a wrong ack.
func TestExpandAckRunsRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		runs []AckRun
		n    int
	}{
		"too few":        {[]AckRun{{Offset: 1, Count: 2}}, 3},
		"too many":       {[]AckRun{{Offset: 1, Count: 2}, {Offset: 2, Count: 2}}, 3},
		"empty run":      {[]AckRun{{Offset: 1, Count: 0}, {Offset: 1, Count: 3}}, 3},
		"none":           {nil, 1},
		"index overflow": {[]AckRun{{Offset: 1, Index: math.MaxUint32, Count: 2}}, 2},
		"tick overflow":  {[]AckRun{{Offset: 1, TimeTick: math.MaxUint64, Count: 2}}, 2},
		"huge count":     {[]AckRun{{Offset: 1, Count: math.MaxUint32}}, 10},
	} {
		if acks, err := ExpandAckRuns(c.runs, c.n); !errors.Is(err, ErrBadAckRuns) {
			t.Errorf("%s: %v, %d acks; want ErrBadAckRuns", name, err, len(acks))
		}
	}
}

// FuzzExpandAckRuns: whatever runs a server answers, expanding them either
// fails with ErrBadAckRuns or gives exactly n acks that group back into
// runs expanding to the same acks.
func FuzzExpandAckRuns(f *testing.F) {
	f.Add(uint64(3), uint32(0), uint64(100), uint32(5), false, uint32(2), 7)
	f.Add(uint64(0), uint32(math.MaxUint32), uint64(math.MaxUint64), uint32(1), true, uint32(0), 1)
	f.Fuzz(func(t *testing.T, off uint64, idx uint32, tick uint64, count uint32, dup bool, count2 uint32, n int) {
		if n < 1 || n > 100_000 {
			return
		}
		runs := []AckRun{{Offset: off, Index: idx, TimeTick: tick, Count: count, Duplicate: dup},
			{Offset: off + 1, TimeTick: tick, Count: count2}}
		acks, err := ExpandAckRuns(runs, n)
		if err != nil {
			if !errors.Is(err, ErrBadAckRuns) {
				t.Fatalf("error %v does not wrap ErrBadAckRuns", err)
			}
			return
		}
		if len(acks) != n {
			t.Fatalf("%d acks for %d messages", len(acks), n)
		}
		again, err := ExpandAckRuns(AckRunsOf(acks), n)
		if err != nil || !reflect.DeepEqual(again, acks) {
			t.Fatalf("regrouped: %v", err)
		}
	})
}
