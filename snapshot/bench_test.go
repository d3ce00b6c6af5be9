package snapshot_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// benchWALBytes is how much WAL the benchmarks flush and read back.
const benchWALBytes = 16 << 20

// fillWAL appends about total bytes of 1 KiB messages over four vchannels
// from 32 producers (group commit makes batches of up to 256 KiB) and
// returns the messages appended and the WAL bytes written. Payloads are
// half random bytes, half repetitive text, like rows with an embedding and
// a few attributes.
func fillWAL(b *testing.B, store objstore.Store, pch string, total int) (int, int64) {
	b.Helper()
	w := openWriter(b, store, pch, func(c *sl.WriterConfig) { c.MaxBatchBytes, c.Linger = 256<<10, 2*time.Millisecond })
	defer w.Close(context.Background())
	const producers, size = 32, 1 << 10
	per := total / size / producers
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			for i := 0; i < per; i++ {
				payload := make([]byte, size)
				for j := 0; j < size/2; j += 8 {
					v := rng.Uint64()
					for k := 0; k < 8; k++ {
						payload[j+k] = byte(v >> (8 * k))
					}
				}
				copy(payload[size/2:], fmt.Sprintf("%0512d", i))
				m := sl.Message{Type: sl.TypeInsert, VChannel: fmt.Sprintf("v%d", (p+i)%4), Payload: payload,
					Key: sl.IdemKey{Producer: fmt.Sprintf("p%d", p), Epoch: 1, Seq: uint64(i + 1)}}
				if _, err := w.Append(context.Background(), m); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s := w.Stats()
	return int(s.MessagesAcked), s.BytesAcked
}

// BenchmarkFlushMinIO: WAL turned into segments per second, and the size of
// the segments against the WAL they came from. Each iteration flushes the
// same 16 MiB of WAL from an empty checkpoint.
func BenchmarkFlushMinIO(b *testing.B) {
	ctx := context.Background()
	store := testkit.MinIOStore(b, "snapshot")
	const pch = "bench-flush"
	msgs, walBytes := fillWAL(b, store, pch, benchWALBytes)
	f := newFlusher(b, store, pch, nil)
	b.SetBytes(walBytes)
	b.ResetTimer()
	var segBytes int64
	for i := 0; i < b.N; i++ {
		rounds, err := f.FlushNow(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		segBytes = 0
		for _, r := range rounds {
			for _, s := range r.Segments {
				segBytes += s.Bytes
			}
		}
		// Start the next iteration from an empty checkpoint again.
		if err := store.Delete(ctx, testLayout.Checkpoint(pch)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(segBytes)/float64(walBytes), "segment/wal")
	b.ReportMetric(float64(msgs), "msgs/flush")
}

// BenchmarkCatchUpMinIO: reading the same 16 MiB of messages from the
// start, from the WAL (before any flush) and from segments (after one).
func BenchmarkCatchUpMinIO(b *testing.B) {
	ctx := context.Background()
	store := testkit.MinIOStore(b, "snapshot")
	const pch = "bench-catchup"
	msgs, walBytes := fillWAL(b, store, pch, benchWALBytes)
	read := func(b *testing.B, segs sl.SegmentReader) {
		b.SetBytes(walBytes)
		for i := 0; i < b.N; i++ {
			sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: pch, Layout: testLayout, From: sl.Earliest(), NoWait: true, Segments: segs}, store)
			if err != nil {
				b.Fatal(err)
			}
			n := len(testkit.ScanToTail(b, ctx, sc))
			sc.Close()
			if n != msgs {
				b.Fatalf("read %d messages, want %d", n, msgs)
			}
		}
		b.ReportMetric(float64(msgs)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	}
	b.Run("wal", func(b *testing.B) { read(b, nil) })
	if _, err := newFlusher(b, store, pch, nil).FlushNow(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("segments", func(b *testing.B) { read(b, snapshot.NewSegmentReader(store, 0)) })
}
