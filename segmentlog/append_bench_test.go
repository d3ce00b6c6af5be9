package segmentlog_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// BenchmarkAppend measures append throughput through the Writer on MinIO
// (64 concurrent producers, group commit, W = 8 batches in flight, linger 0)
// and, in the same run, raw PutIfAbsent of objects of the same average size
// with the same 8 PUTs in flight. It reports both and their ratio:
//
//	go test -run '^$' -bench Append ./segmentlog/
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		b.Run(fmt.Sprintf("msg=%dKiB", size>>10), func(b *testing.B) {
			store := testkit.MinIOStore(b, "segmentlog")
			w := openWriter(b, store, "bench", nil)
			defer w.Close(context.Background())
			payload := make([]byte, size)
			const producers = 64
			var next atomic.Int64
			b.SetBytes(int64(size))
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for p := 0; p < producers; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := w.Append(context.Background(), sl.Message{Type: sl.TypeData, VChannel: "v", Payload: payload}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			st := w.Stats()
			appendMBps := float64(b.N*size) / elapsed.Seconds() / 1e6
			objSize := int(st.BytesAcked / max(1, st.BatchesAcked))
			rawMBps := rawPutThroughput(b, store, int(st.BatchesAcked), objSize, 8)
			b.ReportMetric(appendMBps, "append_MB/s")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(objSize), "obj_bytes")
			b.ReportMetric(rawMBps, "raw_put_MB/s")
			b.ReportMetric(appendMBps/rawMBps, "append_ratio")
		})
	}
}

// rawPutThroughput PUTs n objects of size bytes with PutIfAbsent, inflight at
// a time, and returns MB/s.
func rawPutThroughput(b *testing.B, store objstore.Store, n, size, inflight int) float64 {
	b.Helper()
	n = max(n, 32)
	body := make([]byte, size)
	prefix := fmt.Sprintf("raw/%d/", time.Now().UnixNano())
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < inflight; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := next.Add(1)
				if k > int64(n) {
					return
				}
				if _, err := store.PutIfAbsent(context.Background(), fmt.Sprintf("%s%020d", prefix, k), body, nil); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n*size) / time.Since(start).Seconds() / 1e6
}

// BenchmarkAppendKeyed appends 1 KiB messages with idempotency keys, as
// every SDK producer does (64 producers, each counting its seq up), for ten
// times the dedup window's limit, so that the window is full and evicts for
// most of the run. It reports the rate of the first and the last tenth and
// their ratio (the window's work per ack is O(1): the ratio stays ≥ 0.9):
//
//	go test -run '^$' -bench AppendKeyed ./segmentlog/
func BenchmarkAppendKeyed(b *testing.B) {
	const limit, producers = 10_000, 64
	store := testkit.MinIOStore(b, "segmentlog")
	w := openWriter(b, store, "bench-keyed", func(c *sl.WriterConfig) { c.DedupMaxKeys = limit })
	defer w.Close(context.Background())
	payload := make([]byte, 1<<10)
	total := int64(max(b.N, 10*limit))
	var next atomic.Int64
	var mu sync.Mutex
	done := make([]time.Time, 0, total)
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(0); next.Add(1) <= total; seq++ {
				m := sl.Message{Type: sl.TypeData, VChannel: "v", Payload: payload,
					Key: sl.IdemKey{Producer: fmt.Sprintf("producer-%d", p), Epoch: 1, Seq: seq}}
				if _, err := w.Append(context.Background(), m); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				done = append(done, time.Now())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	tenth := len(done) / 10
	first := float64(tenth) / done[tenth-1].Sub(start).Seconds()
	last := float64(tenth) / done[len(done)-1].Sub(done[len(done)-tenth-1]).Seconds()
	b.ReportMetric(first, "first_tenth_msgs/s")
	b.ReportMetric(last, "last_tenth_msgs/s")
	b.ReportMetric(last/first, "last/first")
}

// BenchmarkAppendBatch compares, on the memory store, the two ways to keep
// 10,000 keyed messages in flight on one Writer: 10,000 goroutines each
// calling Append with one message, and 10 calling AppendBatch with 1,000.
// The store costs nearly nothing, so the figure is the Writer's own cost per
// message (ns/op is per message; allocations too):
//
//	go test -run '^$' -bench AppendBatch -benchmem ./segmentlog/
func BenchmarkAppendBatch(b *testing.B) {
	const inflight, perCall = 10_000, 1_000
	payload := make([]byte, 256)
	for _, mode := range []string{"append", "batch"} {
		b.Run(mode, func(b *testing.B) {
			w := openWriter(b, objstore.NewMemory(), "bench-"+mode, nil)
			defer w.Close(context.Background())
			msg := func(seq int64) sl.Message {
				return sl.Message{Type: sl.TypeData, VChannel: "v", Payload: payload,
					Key: sl.IdemKey{Producer: "bench", Epoch: 1, Seq: uint64(seq)}}
			}
			var next atomic.Int64
			callers, n := inflight, int64(1)
			if mode == "batch" {
				callers, n = inflight/perCall, perCall
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					msgs := make([]sl.Message, 0, n)
					for {
						last := next.Add(n)
						first := last - n + 1
						if first > int64(b.N) {
							return
						}
						msgs = msgs[:0]
						for seq := first; seq <= min(last, int64(b.N)); seq++ {
							msgs = append(msgs, msg(seq))
						}
						var err error
						if mode == "batch" {
							_, err = w.AppendBatch(context.Background(), msgs)
						} else {
							_, err = w.Append(context.Background(), msgs...)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
