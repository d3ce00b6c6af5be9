package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// appendThroughput runs every case of appendCases.
func (r *runner) appendThroughput(ctx context.Context) error {
	for _, c := range appendCases {
		if err := r.appendCase(ctx, c.size, c.pchannels); err != nil {
			return fmt.Errorf("%s: %w", caseName(c.size, c.pchannels), err)
		}
	}
	if err := r.appendKeyed(ctx); err != nil {
		return fmt.Errorf("keyed: %w", err)
	}
	return nil
}

// keyedDedupLimit is the dedup window limit of the keyed case's writer,
// lowered from the default so that 10 × it fits in a run.
const keyedDedupLimit = 10_000

// appendKeyed appends 1 KiB messages with idempotency keys, as every SDK
// producer does (64 producers on one pchannel, each counting its seq up),
// until 10 × the writer's dedup limit of keys are acked: the window is full
// and evicting for nine tenths of the run. It compares the rate of the
// last tenth with the first, and the whole with the unkeyed 1 KiB case.
func (r *runner) appendKeyed(ctx context.Context) error {
	total := int64(10 * keyedDedupLimit)
	r.progress("append keyed: %d 1 KiB keyed messages, dedup limit %d", total, keyedDedupLimit)
	w, err := r.openWriter(ctx, "tp-keyed", nil, func(c *segmentlog.WriterConfig) { c.DedupMaxKeys = keyedDedupLimit })
	if err != nil {
		return err
	}
	defer closeWriters(w)
	payload := randomBytes(1 << 10)
	var next atomic.Int64
	var mu sync.Mutex
	acked := make([]time.Time, 0, total)
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for p := range producers {
		wg.Go(func() {
			key := segmentlog.IdemKey{Producer: fmt.Sprintf("bench-%d", p), Epoch: uint64(start.UnixNano())}
			for ; ctx.Err() == nil && next.Add(1) <= total; key.Seq++ {
				m := segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", Payload: payload, Key: key}
				if _, err := w.Append(ctx, m); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				mu.Lock()
				acked = append(acked, time.Now())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(firstErr, ctx.Err()); err != nil {
		return err
	}
	tenth := len(acked) / 10
	first := float64(tenth) / acked[tenth-1].Sub(start).Seconds()
	last := float64(tenth) / acked[len(acked)-1].Sub(acked[len(acked)-tenth-1]).Seconds()
	all := float64(len(acked)) / acked[len(acked)-1].Sub(start).Seconds()
	r.rep.set("append_keyed_1kib_1p_msgs_per_s", all)
	r.rep.set("append_keyed_first_tenth_msgs_per_s", first)
	r.rep.set("append_keyed_last_tenth_msgs_per_s", last)
	r.rep.set("append_keyed_tenths_ratio", last/first)
	if m, ok := r.rep.Metrics["append_1kib_1p_msgs_per_s"]; ok && m.Value > 0 {
		r.rep.set("append_keyed_ratio", all/m.Value)
	}
	return nil
}

// appendCase measures npch writers with producers appending size-byte
// messages each, against raw PutIfAbsent of objects of the writers' mean
// batch size, npch × W in flight, slice by slice. Both sides' PUTs go
// through one putMeter.
func (r *runner) appendCase(ctx context.Context, size, npch int) error {
	name := caseName(size, npch)
	r.progress("append %s: %v Writer, %v raw PutIfAbsent", name, r.cfg.Duration, r.cfg.Duration)
	meter := newPutMeter(r.store)
	ws := make([]*segmentlog.Writer, npch)
	defer func() { closeWriters(ws...) }()
	for i := range ws {
		w, err := r.openWriter(ctx, fmt.Sprintf("tp-%s-%d", name, i), meter, nil)
		if err != nil {
			return err
		}
		ws[i] = w
	}
	payload := randomBytes(size)
	raw := &rawPutter{store: meter, prefix: "raw/" + name + "/"}
	if _, err := appendFor(ctx, ws, payload, r.warmUp()); err != nil {
		return err
	}
	if _, err := raw.putFor(ctx, meanBatch(ws), npch*window, r.warmUp()); err != nil {
		return err
	}
	var lib, put tally
	var libPuts, rawPuts putStats
	n, slice := r.slices()
	for range n {
		m0 := meter.read()
		t, err := appendFor(ctx, ws, payload, slice)
		if err != nil {
			return err
		}
		m1 := meter.read()
		lib.add(t)
		libPuts.add(m0, m1)
		// The raw side PUTs objects of the size the Writer PUT in this
		// very slice.
		t, err = raw.putFor(ctx, int(t.objBytes/max(1, t.objects)), npch*window, slice)
		if err != nil {
			return err
		}
		rawPuts.add(m1, meter.read())
		put.add(t)
	}
	r.rep.set("append_"+name+"_mbps", lib.mbps())
	r.rep.set("append_"+name+"_msgs_per_s", lib.perSecond())
	r.rep.set("append_"+name+"_batch_bytes", float64(lib.objBytes)/float64(max(1, lib.objects)))
	r.rep.set("append_"+name+"_inflight", libPuts.inflight())
	r.rep.set("append_"+name+"_put_ms", libPuts.latencyMs())
	r.rep.set("append_"+name+"_cpu_ms_per_mb", lib.cpuPerMB())
	r.rep.set("raw_put_"+name+"_mbps", put.mbps())
	r.rep.set("raw_put_"+name+"_inflight", rawPuts.inflight())
	r.rep.set("raw_put_"+name+"_put_ms", rawPuts.latencyMs())
	r.rep.set("raw_put_"+name+"_cpu_ms_per_mb", put.cpuPerMB())
	r.rep.set("append_ratio_"+name, lib.mbps()/put.mbps())
	return nil
}

// meanBatch is the mean size of the batch objects ws have acked.
func meanBatch(ws []*segmentlog.Writer) int {
	var n, b int64
	for _, w := range ws {
		st := w.Stats()
		n += st.BatchesAcked
		b += st.BytesAcked
	}
	return int(b / max(1, n))
}

// appendFor runs producers appenders on each writer for d and returns the
// payload appended. Appends in flight at d are waited for and counted.
func appendFor(ctx context.Context, ws []*segmentlog.Writer, payload []byte, d time.Duration) (tally, error) {
	before := make([]segmentlog.WriterStats, len(ws))
	for i, w := range ws {
		before[i] = w.Stats()
	}
	cpu0, _ := processCPU()
	var msgs atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for _, w := range ws {
		for range producers {
			wg.Go(func() {
				m := segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", Payload: payload}
				for ctx.Err() == nil && time.Now().Before(deadline) {
					if _, err := w.Append(ctx, m); err != nil {
						errOnce.Do(func() { firstErr = err })
						return
					}
					msgs.Add(1)
				}
			})
		}
	}
	wg.Wait()
	cpu1, _ := processCPU()
	t := tally{msgs: msgs.Load(), elapsed: time.Since(start), cpu: cpu1 - cpu0}
	t.bytes = t.msgs * int64(len(payload))
	for i, w := range ws {
		st := w.Stats()
		t.objects += st.BatchesAcked - before[i].BatchesAcked
		t.objBytes += st.BytesAcked - before[i].BytesAcked
	}
	return t, errors.Join(firstErr, ctx.Err())
}

// rawPutter writes objects with PutIfAbsent under prefix, numbering them.
type rawPutter struct {
	store  objstore.Store
	prefix string
	seq    atomic.Int64
}

// rawMeta is the metadata the Writer sends with every batch.
var rawMeta = map[string]string{"term": "1"}

func (p *rawPutter) key() string {
	return fmt.Sprintf("%s%0*d", p.prefix, segmentlog.OffsetDigits, p.seq.Add(1))
}

// putFor PUTs size-byte objects, inflight at a time, for d.
func (p *rawPutter) putFor(ctx context.Context, size, inflight int, d time.Duration) (tally, error) {
	body := randomBytes(max(size, 1))
	cpu0, _ := processCPU()
	var n atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range inflight {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if _, err := p.store.PutIfAbsent(ctx, p.key(), body, rawMeta); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	cpu1, _ := processCPU()
	t := tally{msgs: n.Load(), objects: n.Load(), elapsed: time.Since(start), cpu: cpu1 - cpu0}
	t.bytes = t.msgs * int64(len(body))
	t.objBytes = t.bytes
	return t, errors.Join(firstErr, ctx.Err())
}

// appendLatency times one sequential producer's 1 KiB appends (linger 0)
// and raw PUTs of the very object such an append writes, alternately.
func (r *runner) appendLatency(ctx context.Context) error {
	r.progress("latency: %v of sequential Append and raw PutIfAbsent, alternating", 2*r.cfg.Duration)
	w, err := r.openWriter(ctx, "latency", nil, nil)
	if err != nil {
		return err
	}
	defer closeWriters(w)
	m := segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", Payload: randomBytes(1 << 10)}
	if _, err := w.Append(ctx, m); err != nil {
		return err
	}
	raw := &rawPutter{store: r.store, prefix: "raw/latency/"}
	body := randomBytes(meanBatch([]*segmentlog.Writer{w}))
	var lib, put latencies
	deadline := time.Now().Add(2 * r.cfg.Duration)
	for time.Now().Before(deadline) {
		t0 := time.Now()
		if _, err := w.Append(ctx, m); err != nil {
			return err
		}
		t1 := time.Now()
		if _, err := raw.store.PutIfAbsent(ctx, raw.key(), body, rawMeta); err != nil {
			return err
		}
		lib = append(lib, t1.Sub(t0))
		put = append(put, time.Since(t1))
	}
	r.rep.set("append_p50_ms", lib.quantileMs(0.50))
	r.rep.set("append_p99_ms", lib.quantileMs(0.99))
	r.rep.set("raw_put_p50_ms", put.quantileMs(0.50))
	r.rep.set("raw_put_p99_ms", put.quantileMs(0.99))
	r.rep.set("append_p50_overhead_ms", lib.quantileMs(0.50)-put.quantileMs(0.50))
	r.rep.set("append_p99_overhead_ms", lib.quantileMs(0.99)-put.quantileMs(0.99))
	return nil
}
