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
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// httpAppend serves the HTTP API as `cairn serve` builds it (functions/api
// over the same store, on a loopback port) and appends 1 KiB messages
// through it with the Go SDK, one message per request from producers
// concurrent clients, against the same appends through a library Writer
// configured as the API's pool configures its writers, slice by slice.
func (r *runner) httpAppend(ctx context.Context) error {
	r.progress("http: %v through the HTTP API, %v through the library, 1 KiB, %d concurrent", r.cfg.Duration, r.cfg.Duration, producers)
	srv, err := newServer(system.Config{Layout: r.layout, Holder: "bench-http", PChannels: []string{"http"}, TimeTickInterval: -1, Logger: r.log}, r.store)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Close(cctx) // releases the lease; the figures are taken
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(api.AllRoles), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }() // ends with Close below
	defer hs.Close()
	cl, err := client.New("http://" + ln.Addr().String())
	if err != nil {
		return err
	}

	c, err := cache.New[*segmentlog.Batch](cache.Config{})
	if err != nil {
		return err
	}
	defer c.Close()
	lib, err := r.openWriter(ctx, "http-lib", nil, func(cfg *segmentlog.WriterConfig) {
		cfg.MaxBatchBytes, cfg.Cache, cfg.Tail = system.DefaultMaxBatchBytes, c, &cache.Tail{}
	})
	if err != nil {
		return err
	}
	defer closeWriters(lib)

	payload := randomBytes(1 << 10)
	viaHTTP := func(ctx context.Context) error {
		_, err := cl.Append(ctx, "http", []client.Message{{VChannel: "v", Payload: payload}}, client.AppendOptions{})
		return err
	}
	viaLib := func(ctx context.Context) error {
		_, err := lib.Append(ctx, segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", Payload: payload})
		return err
	}
	if err := viaHTTP(ctx); err != nil { // opens the pool's writer
		return fmt.Errorf("first append over HTTP: %w", err)
	}
	if _, err := callFor(ctx, viaHTTP, r.warmUp()); err != nil {
		return err
	}
	if _, err := callFor(ctx, viaLib, r.warmUp()); err != nil {
		return err
	}
	var h, l tally
	n, slice := r.slices()
	for range n {
		t, err := callFor(ctx, viaLib, slice)
		if err != nil {
			return fmt.Errorf("library: %w", err)
		}
		l.add(t)
		t, err = callFor(ctx, viaHTTP, slice)
		if err != nil {
			return fmt.Errorf("HTTP: %w", err)
		}
		h.add(t)
	}
	h.bytes, l.bytes = h.msgs*int64(len(payload)), l.msgs*int64(len(payload))
	r.rep.set("http_append_mbps", h.mbps())
	r.rep.set("http_append_msgs_per_s", h.perSecond())
	r.rep.set("http_lib_append_mbps", l.mbps())
	r.rep.set("http_append_ratio", h.mbps()/l.mbps())
	r.rep.set("http_cpu_us_per_msg", h.cpuPerMsgUs())
	r.rep.set("http_lib_cpu_us_per_msg", l.cpuPerMsgUs())
	return nil
}

// callFor runs call from producers goroutines for d and counts the calls
// that succeeded; calls in flight at d are waited for and counted.
func callFor(ctx context.Context, call func(context.Context) error, d time.Duration) (tally, error) {
	return callForN(ctx, producers, call, d)
}

// callForN is callFor with n goroutines.
func callForN(ctx context.Context, n int, call func(context.Context) error, d time.Duration) (tally, error) {
	cpu0, _ := processCPU()
	var calls atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if err := call(ctx); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				calls.Add(1)
			}
		})
	}
	wg.Wait()
	cpu1, _ := processCPU()
	return tally{msgs: calls.Load(), elapsed: time.Since(start), cpu: cpu1 - cpu0}, errors.Join(firstErr, ctx.Err())
}

// newServer is the system of cfg over store with its HTTP API, as `cairn
// serve` assembles them (without the store probe: the bench's stores are
// known).
func newServer(cfg system.Config, store objstore.Store) (*api.Server, error) {
	sys, err := system.New(cfg, store)
	if err != nil {
		return nil, err
	}
	return api.New(api.Config{}, sys)
}
