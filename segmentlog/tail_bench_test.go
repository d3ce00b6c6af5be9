package segmentlog_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/cache"
	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/objstore/s3store"
	"github.com/cairnlog/cairn/infra/testkit"
	sl "github.com/cairnlog/cairn/segmentlog"
)

// Tail and catch-up reads against MinIO (issue #4):
//
//	go test -run '^$' -bench 'Tail|CatchUp' -benchtime 2s ./segmentlog/
//
// BenchmarkTailLatency* report the time from an append's ack (Append
// returned) to its delivery by a tailing reader, p50 and p99 in ms, with
// appends at a steady pace. BenchmarkCatchUp reports a scanner's catch-up
// MB/s with and without read-ahead next to raw parallel GETs of the same
// objects.

// tailPace is the interval between appends in the tail-latency benchmarks.
const tailPace = 20 * time.Millisecond

// latencies summarises ack-to-delivery times.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		b.Fatal("no latency measured")
	}
	slices.Sort(l)
	q := func(p float64) float64 {
		return float64(l[min(len(l)-1, int(p*float64(len(l))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(float64(len(l)), "samples")
}

// sinceAck is the latency of a delivery at recv of a batch acked at ack.
// The writer wakes in-process readers before Append returns, so a delivery
// may be seen a hair before the ack: that counts as 0.
func sinceAck(recv, ack time.Time) time.Duration { return max(0, recv.Sub(ack)) }

// BenchmarkTailLatencyInProcess: a scanner in the writer's process, with its
// Cache and Tail. pace=20ms appends at a steady pace; pace=0 appends back to
// back, each as soon as the previous one is acked.
func BenchmarkTailLatencyInProcess(b *testing.B) {
	for _, pace := range []time.Duration{tailPace, 0} {
		b.Run(fmt.Sprintf("pace=%v", pace), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			store := testkit.MinIOStore(b, "segmentlog")
			c := newBatchCache(b, cache.Config{Metrics: true})
			tail := &cache.Tail{}
			w := openTailWriter(b, store, "tail", func(cfg *sl.WriterConfig) { cfg.Cache, cfg.Tail = c, tail })
			defer w.Close(context.Background())
			sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: "tail", Layout: testLayout, From: sl.Latest(),
				Cache: c, Tail: tail, GetTimeout: time.Second}, store)
			if err != nil {
				b.Fatal(err)
			}
			defer sc.Close()

			type recvd struct {
				id sl.MessageID
				at time.Time
			}
			got := make(chan recvd, 1<<16)
			readerDone := make(chan error, 1)
			go func() {
				for {
					d, err := sc.Next(ctx)
					if err != nil {
						readerDone <- err
						return
					}
					got <- recvd{d.ID, time.Now()}
				}
			}()

			acked := map[sl.MessageID]time.Time{}
			next := time.Now()
			for b.Loop() {
				acks, err := w.Append(ctx, dataMsg("v", "x"))
				if err != nil {
					b.Fatal(err)
				}
				acked[acks[0].ID] = time.Now()
				if pace > 0 {
					next = next.Add(pace)
					time.Sleep(time.Until(next))
				}
			}
			b.StopTimer()
			var lat latencies
			for len(lat) < len(acked) {
				select {
				case r := <-got:
					at, ok := acked[r.id]
					if !ok {
						b.Fatalf("delivered %v, never acked", r.id)
					}
					lat = append(lat, sinceAck(r.at, at))
				case err := <-readerDone:
					b.Fatalf("reader: %v", err)
				case <-time.After(30 * time.Second):
					b.Fatalf("%d of %d appends delivered", len(lat), len(acked))
				}
			}
			cancel()
			<-readerDone // the reader has left the scanner: its Stats may be read
			lat.report(b)
			st := sc.Stats()
			b.ReportMetric(100*float64(st.CacheHits)/float64(st.Batches), "hit%")
			b.ReportMetric(float64(st.StoreReads)/float64(st.Batches), "store_reads/batch")
		})
	}
}

// Environment of the long-polling reader process.
const (
	helperEnv         = "CAIRN_TAIL_HELPER"
	helperPChannelEnv = "CAIRN_TAIL_PCHANNEL"
)

// BenchmarkTailLatencyLongPoll: the reader runs in another process (this test
// binary again, as TestHelperLongPollReader) with no Cache and no Tail: it
// long-polls MinIO with the default backoff (5 ms doubling to 250 ms) and
// prints the wall-clock time of each delivery; both processes share the
// machine's clock.
func BenchmarkTailLatencyLongPoll(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := testkit.MinIOStore(b, "segmentlog")
	srv := miniotest.Get(b)
	user, password := srv.Credentials()
	w := openTailWriter(b, store, "tail", nil)
	defer w.Close(context.Background())

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperLongPollReader$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(),
		helperEnv+"=1",
		helperPChannelEnv+"=tail",
		"CAIRN_S3_ENDPOINT="+srv.Endpoint(),
		"CAIRN_S3_BUCKET="+store.Bucket(),
		"CAIRN_S3_PREFIX="+store.Prefix(),
		"AWS_ACCESS_KEY_ID="+user,
		"AWS_SECRET_ACCESS_KEY="+password,
		"AWS_REGION="+s3store.DefaultRegion,
	)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel() // kills the child if it is still running

	ready := make(chan struct{})
	type recvd struct {
		seq int
		at  time.Time
	}
	got := make(chan recvd, 1<<16)
	readerDone := make(chan error, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			f := strings.Fields(lines.Text())
			switch {
			case len(f) == 1 && f[0] == "ready":
				close(ready)
			case len(f) == 1 && f[0] == "bye":
				readerDone <- nil
				io.Copy(io.Discard, stdout)
				return
			case len(f) == 3 && f[0] == "recv":
				seq, err1 := strconv.Atoi(f[1])
				ns, err2 := strconv.ParseInt(f[2], 10, 64)
				if err := errors.Join(err1, err2); err != nil {
					readerDone <- fmt.Errorf("reader printed %q: %w", lines.Text(), err)
					return
				}
				got <- recvd{seq, time.Unix(0, ns)}
			}
		}
		readerDone <- fmt.Errorf("reader exited without saying bye: %v", lines.Err())
	}()
	select {
	case <-ready:
	case err := <-readerDone:
		b.Fatal(err)
	case <-time.After(time.Minute):
		b.Fatal("the reader process did not get ready")
	}

	var acked []time.Time
	next := time.Now()
	for b.Loop() {
		if _, err := w.Append(ctx, dataMsg("v", strconv.Itoa(len(acked)))); err != nil {
			b.Fatal(err)
		}
		acked = append(acked, time.Now())
		next = next.Add(tailPace)
		time.Sleep(time.Until(next))
	}
	b.StopTimer()
	if _, err := w.Append(ctx, dataMsg("v", "stop")); err != nil {
		b.Fatal(err)
	}
	var lat latencies
	for len(lat) < len(acked) {
		select {
		case r := <-got:
			if r.seq < 0 || r.seq >= len(acked) {
				b.Fatalf("reader delivered append %d of %d", r.seq, len(acked))
			}
			lat = append(lat, sinceAck(r.at, acked[r.seq]))
		case err := <-readerDone:
			b.Fatalf("reader stopped after %d of %d deliveries: %v", len(lat), len(acked), err)
		case <-time.After(30 * time.Second):
			b.Fatalf("%d of %d appends delivered", len(lat), len(acked))
		}
	}
	select {
	case err := <-readerDone:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		b.Fatal("the reader did not stop")
	}
	lat.report(b)
}

// TestHelperLongPollReader is BenchmarkTailLatencyLongPoll's reader process;
// run by the test binary itself, it does nothing.
func TestHelperLongPollReader(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return // only as BenchmarkTailLatencyLongPoll's child
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	store, err := s3store.New(ctx, s3store.ConfigFromEnv(os.Getenv))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: os.Getenv(helperPChannelEnv), Layout: testLayout,
		From: sl.Latest(), GetTimeout: time.Second}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	fmt.Println("ready")
	for {
		d, err := sc.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now().UnixNano()
		if string(d.Payload) == "stop" {
			fmt.Println("bye")
			return
		}
		fmt.Printf("recv %s %d\n", d.Payload, at)
	}
}

// BenchmarkCatchUp reads one WAL of 512 batches of 64 KiB on MinIO: raw-get
// GETs its objects 16 at once; readahead-16 and readahead-1 scan it from the
// start with that read-ahead. MB/s counts the batch objects' bytes.
func BenchmarkCatchUp(b *testing.B) {
	const (
		batches = 512
		size    = 64 << 10
	)
	ctx := context.Background()
	store := testkit.MinIOStore(b, "segmentlog")
	// One message per batch (a second one would not fit), and no timetick
	// batch after them.
	w := openTailWriter(b, store, "catchup", func(c *sl.WriterConfig) {
		c.MaxBatchBytes, c.TimeTickInterval = size+1<<10, -1
	})
	var next atomic.Int64
	var wg sync.WaitGroup
	payload := make([]byte, size)
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= batches {
				if _, err := w.Append(ctx, sl.Message{Type: sl.TypeData, VChannel: "v", Payload: payload}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	st := w.Stats()
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if st.BatchesAcked != batches {
		b.Fatalf("%d batches for %d appends", st.BatchesAcked, batches)
	}
	first := st.Frontier - batches
	total := st.BytesAcked

	b.Run("raw-get", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			var next atomic.Int64
			var read atomic.Int64
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					for i := next.Add(1) - 1; i < batches; i = next.Add(1) - 1 {
						obj, err := store.Get(ctx, testLayout.WAL("catchup", first+uint64(i)))
						if err != nil {
							b.Error(err)
							return
						}
						read.Add(int64(len(obj.Body)))
					}
				})
			}
			wg.Wait()
			if read.Load() != total {
				b.Fatalf("read %d bytes, want %d", read.Load(), total)
			}
		}
	})
	for _, ra := range []int{16, 1} {
		b.Run(fmt.Sprintf("readahead-%d", ra), func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				sc, err := sl.NewScanner(ctx, sl.ScannerConfig{PChannel: "catchup", Layout: testLayout, From: sl.Earliest(),
					ReadAhead: ra, NoWait: true, GetTimeout: 5 * time.Second}, store)
				if err != nil {
					b.Fatal(err)
				}
				n := len(testkit.ScanToTail(b, ctx, sc))
				sc.Close()
				if n != batches {
					b.Fatalf("scanned %d messages, want %d", n, batches)
				}
			}
		})
	}
}
