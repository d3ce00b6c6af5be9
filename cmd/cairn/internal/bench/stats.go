package bench

import (
	"math"
	"slices"
	"time"
)

// latencies collects request or delivery times.
type latencies []time.Duration

// quantileMs returns the q-quantile (nearest rank) in milliseconds; 0 when
// empty.
func (l latencies) quantileMs(q float64) float64 {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return ms(s[min(max(i, 0), len(s)-1)])
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median returns the middle duration of ds (the lower of the two middles).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// tally is the work one side of a comparison did, summed over its slices.
type tally struct {
	bytes    int64 // payload bytes (appends) or object bytes (raw)
	msgs     int64 // messages acked, or objects PUT/GOT
	objects  int64 // objects written
	objBytes int64 // bytes of those objects
	elapsed  time.Duration
	cpu      time.Duration // CPU time of the whole process meanwhile
}

func (t *tally) add(o tally) {
	t.bytes += o.bytes
	t.msgs += o.msgs
	t.objects += o.objects
	t.objBytes += o.objBytes
	t.elapsed += o.elapsed
	t.cpu += o.cpu
}

// cpuPerMsgUs is the process's CPU time per message, in µs.
func (t tally) cpuPerMsgUs() float64 {
	return float64(t.cpu) / float64(time.Microsecond) / float64(max(1, t.msgs))
}

// mbps is bytes per second in 10⁶.
func (t tally) mbps() float64 { return float64(t.bytes) / t.elapsed.Seconds() / 1e6 }

// perSecond is msgs per second.
func (t tally) perSecond() float64 { return float64(t.msgs) / t.elapsed.Seconds() }

// cpuPerMB is the process's CPU time per 10⁶ bytes, in ms.
func (t tally) cpuPerMB() float64 { return ms(t.cpu) / (float64(t.bytes) / 1e6) }
