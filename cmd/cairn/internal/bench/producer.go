package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/cache"
	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/segmentlog"
)

// producerInflightBytes and producerInflightMsgs bound the messages in
// flight on both sides of the producer phase: 10,000 messages or 16 MiB,
// whichever is less.
const (
	producerInflightMsgs  = 10_000
	producerInflightBytes = 16 << 20
)

// producerSizes are the message sizes of the producer phase.
var producerSizes = []int{1 << 10, 16 << 10}

// producerWindows are the Producer windows compared as `cairn produce`
// configures its Producer.
var producerWindows = []int{1, 4}

// httpProducer measures the user's path: an SDK Producer (binary batch
// bodies, Window 8) through the HTTP API as `cairn serve` builds it,
// against the library's pipelined appends — as many messages in flight, in
// Writer.AppendBatch calls, as the Producer has pending — on a Writer
// configured as the API's pool configures its writers, slice by slice, keyed messages on
// both sides. Then Window 1 against Window 4 with `cairn produce`'s
// Producer configuration.
func (r *runner) httpProducer(ctx context.Context) error {
	r.progress("producer: SDK Producer over HTTP against library appends, %v each per size; then Window 1 against 4, %v each",
		r.cfg.Duration, r.cfg.Duration)
	cl, stop, err := r.serveAPI("bench-producer")
	if err != nil {
		return err
	}
	defer stop()
	c, err := cache.New[*segmentlog.Batch](cache.Config{})
	if err != nil {
		return err
	}
	defer c.Close()

	for _, size := range producerSizes {
		name := fmt.Sprintf("%dkib", size>>10)
		inflight := min(producerInflightMsgs, producerInflightBytes/size)
		lib, err := r.openWriter(ctx, "prod-lib-"+name, nil, func(cfg *segmentlog.WriterConfig) {
			cfg.MaxBatchBytes, cfg.Cache, cfg.Tail = system.DefaultMaxBatchBytes, c, &cache.Tail{}
		})
		if err != nil {
			return err
		}
		p, err := cl.Producer("prod-http-"+name, client.ProducerConfig{
			VChannel: "v", Window: 8, MaxBatchMessages: api.DefaultMaxAppendMessages,
			MaxBatchBytes: system.DefaultMaxBatchBytes, MaxPending: inflight,
		})
		if err != nil {
			closeWriters(lib)
			return err
		}
		h, l, err := r.compareProducer(ctx, p, lib, size, inflight)
		closeWriters(lib)
		if cerr := p.Close(ctx); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r.rep.set("http_producer_"+name+"_msgs_per_s", h.perSecond())
		r.rep.set("http_producer_lib_"+name+"_msgs_per_s", l.perSecond())
		r.rep.set("http_producer_"+name+"_ratio", h.perSecond()/l.perSecond())
		r.rep.set("http_producer_"+name+"_cpu_us_per_msg", h.cpuPerMsgUs())
		r.rep.set("http_producer_lib_"+name+"_cpu_us_per_msg", l.cpuPerMsgUs())
	}
	return r.compareWindows(ctx, cl)
}

// compareProducer alternates slices of the Producer and of the library.
func (r *runner) compareProducer(ctx context.Context, p *client.Producer, lib *segmentlog.Writer, size, inflight int) (h, l tally, err error) {
	payload := randomBytes(size)
	keys := &libKeys{epoch: uint64(time.Now().UnixNano())}
	if _, err := produceFor(ctx, p, payload, r.warmUp()); err != nil {
		return h, l, fmt.Errorf("producer: %w", err)
	}
	if _, err := pipelineFor(ctx, lib, keys, payload, inflight, r.warmUp()); err != nil {
		return h, l, fmt.Errorf("library: %w", err)
	}
	n, slice := r.slices()
	for range n {
		t, err := pipelineFor(ctx, lib, keys, payload, inflight, slice)
		if err != nil {
			return h, l, fmt.Errorf("library: %w", err)
		}
		l.add(t)
		if t, err = produceFor(ctx, p, payload, slice); err != nil {
			return h, l, fmt.Errorf("producer: %w", err)
		}
		h.add(t)
	}
	return h, l, nil
}

// compareWindows alternates slices of two Producers configured as `cairn
// produce` configures its own, with Window 1 and 4, 1 KiB messages.
func (r *runner) compareWindows(ctx context.Context, cl *client.Client) error {
	payload := randomBytes(1 << 10)
	ps := make([]*client.Producer, len(producerWindows))
	defer func() {
		for _, p := range ps {
			if p != nil {
				_ = p.Close(ctx) // the figures are taken
			}
		}
	}()
	for i, w := range producerWindows {
		p, err := cl.Producer(fmt.Sprintf("prod-window-%d", w), client.ProducerConfig{VChannel: "v", Window: w, MaxBatchBytes: system.DefaultMaxBatchBytes})
		if err != nil {
			return err
		}
		ps[i] = p
		if _, err := produceFor(ctx, p, payload, r.warmUp()); err != nil {
			return fmt.Errorf("window %d: %w", w, err)
		}
	}
	ts := make([]tally, len(ps))
	n, slice := r.slices()
	for range n {
		for i, p := range ps {
			t, err := produceFor(ctx, p, payload, slice)
			if err != nil {
				return fmt.Errorf("window %d: %w", producerWindows[i], err)
			}
			ts[i].add(t)
		}
	}
	for i, w := range producerWindows {
		r.rep.set(fmt.Sprintf("producer_window%d_msgs_per_s", w), ts[i].perSecond())
	}
	r.rep.set("producer_window4_ratio", ts[1].perSecond()/ts[0].perSecond())
	return nil
}

// produceFor sends messages through p as fast as it takes them for d, then
// flushes; the time counts until every message is acked.
func produceFor(ctx context.Context, p *client.Producer, payload []byte, d time.Duration) (tally, error) {
	cpu0, _ := processCPU()
	start := time.Now()
	deadline := start.Add(d)
	var n int64
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if _, err := p.SendAsync(ctx, client.Message{Payload: payload}); err != nil {
			return tally{}, err
		}
		n++
	}
	if err := p.Flush(ctx); err != nil {
		return tally{}, err
	}
	cpu1, _ := processCPU()
	return tally{msgs: n, bytes: n * int64(len(payload)), elapsed: time.Since(start), cpu: cpu1 - cpu0}, ctx.Err()
}

// libKeys hands out the library side's idempotency keys.
type libKeys struct {
	epoch uint64
	seq   atomic.Uint64
}

// take reserves n consecutive keys: the ones after the key it returns.
func (k *libKeys) take(n int) segmentlog.IdemKey {
	return segmentlog.IdemKey{Producer: "bench-lib", Epoch: k.epoch, Seq: k.seq.Add(uint64(n)) - uint64(n)}
}

// pipelineFor keeps inflight keyed messages in flight on w for d, as the
// library pipelines them: window goroutines each calling
// Writer.AppendBatch with inflight/window messages (as the Producer keeps
// its Window batches in flight). Calls in flight at d are waited for and
// counted.
func pipelineFor(ctx context.Context, w *segmentlog.Writer, keys *libKeys, payload []byte, inflight int, d time.Duration) (tally, error) {
	per := max(1, inflight/window)
	cpu0, _ := processCPU()
	var acked atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range window {
		wg.Go(func() {
			msgs := make([]segmentlog.Message, per)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				first := keys.take(per) // consecutive, as a Producer's batch
				for i := range msgs {
					first.Seq = first.Seq + 1
					msgs[i] = segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", Payload: payload, Key: first}
				}
				acks, err := w.AppendBatch(ctx, msgs)
				acked.Add(int64(len(acks)))
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	cpu1, _ := processCPU()
	n := acked.Load()
	return tally{msgs: n, bytes: n * int64(len(payload)), elapsed: time.Since(start), cpu: cpu1 - cpu0}, errors.Join(firstErr, ctx.Err())
}

// serveAPI serves the HTTP API as `cairn serve` builds it, over the run's
// store on a loopback port, and returns an SDK client of it and the
// function that stops it.
func (r *runner) serveAPI(holder string) (*client.Client, func(), error) {
	// The API takes only its configured pchannels: the ones this phase
	// appends to.
	var pchannels []string
	for _, size := range producerSizes {
		pchannels = append(pchannels, fmt.Sprintf("prod-http-%dkib", size>>10))
	}
	for _, w := range producerWindows {
		pchannels = append(pchannels, fmt.Sprintf("prod-window-%d", w))
	}
	srv, err := newServer(system.Config{Layout: r.layout, Holder: holder, PChannels: pchannels, TimeTickInterval: -1, Logger: r.log}, r.store)
	if err != nil {
		return nil, nil, err
	}
	closeSrv := func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Close(cctx) // releases the leases; the figures are taken
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		closeSrv()
		return nil, nil, err
	}
	hs := &http.Server{Handler: srv.Handler(api.AllRoles), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }() // ends with Close below
	cl, err := client.New("http://" + ln.Addr().String())
	stop := func() { hs.Close(); closeSrv() }
	if err != nil {
		stop()
		return nil, nil, err
	}
	return cl, stop, nil
}
