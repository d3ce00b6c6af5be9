package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/objstore/s3store"
)

// LambdaTarget is what the lambda phase needs: the node function's
// bootstrap (lambdaemu.Build of ./functions/node) and the S3 store the
// functions and `cairn serve` run on.
type LambdaTarget struct {
	Bootstrap string
	// S3 names the store: endpoint, bucket, static credentials. Every case
	// runs under a prefix of its own.
	S3 s3store.Config
}

// lambdaMaxPending bounds each Producer's messages in flight: enough for
// full batches, few enough that a case drains quickly and that the server's
// idempotency window (100,000 keys) never fills within a case.
const lambdaMaxPending = 2000

// lambdaCase is one measured configuration of the lambda phase.
type lambdaCase struct {
	// mode is "serve", a node write mode on the emulator, or "affinity":
	// takeover write mode with reserved concurrency 1, one environment for
	// the pchannel (a function per pchannel group, the deployment the
	// shared mode was measured against).
	mode      string
	producers int // SDK Producers, each with its own client
	pchannels int // producers are spread over p0…p{n-1}
}

func (c lambdaCase) key() string { return fmt.Sprintf("%s_k%d_%dp", c.mode, c.producers, c.pchannels) }

// lambdaCases: shared write mode (the template's) and `cairn serve` at k =
// 1, 4, 16 producers on one pchannel and on four; exclusive mode at k = 4
// on one pchannel, to show what shared terms fix; affinity at k = 16 on
// one pchannel, the other design measured for it.
var lambdaCases = func() []lambdaCase {
	var cs []lambdaCase
	for _, np := range []int{1, 4} {
		for _, k := range []int{1, 4, 16} {
			cs = append(cs, lambdaCase{"serve", k, np}, lambdaCase{"shared", k, np})
		}
	}
	return append(cs, lambdaCase{"exclusive", 4, 1}, lambdaCase{"affinity", 16, 1})
}()

// lambda runs SDK Producers (1 KiB messages, Window 1, default retries)
// against the node function on the Lambda emulator — real bootstraps,
// environments frozen between invocations, requests routed at random, at
// most 32 environments — and against `cairn serve`'s handler in this
// process, on the same MinIO through a counting proxy, case by case.
func (r *runner) lambda(ctx context.Context) error {
	t := r.cfg.Lambda
	if t == nil {
		return errors.New("the lambda phase needs the node bootstrap and an S3 store (cairn bench --store minio)")
	}
	proxy, err := startCountingProxy(t.S3.Endpoint)
	if err != nil {
		return err
	}
	defer proxy.close()
	r.progress("lambda: %d cases of %v each: SDK producers against the node function on the Lambda emulator and against cairn serve", len(lambdaCases), r.cfg.Duration)
	for i, c := range lambdaCases {
		res, err := r.lambdaCase(ctx, t, proxy, c, i)
		if err != nil {
			return fmt.Errorf("%s: %w", c.key(), err)
		}
		k := "lambda_" + c.key()
		r.rep.set(k+"_msgs_per_s", res.msgsPerS)
		r.rep.set(k+"_p50_ms", res.p50)
		r.rep.set(k+"_p99_ms", res.p99)
		r.rep.set(k+"_store_requests_per_append", res.storePerAppend)
		r.rep.set(k+"_throttled", float64(res.throttled))
		r.rep.set(k+"_failed", float64(res.failed))
	}
	for _, np := range []int{1, 4} {
		shared, serve := r.rep.Metrics[fmt.Sprintf("lambda_shared_k16_%dp_msgs_per_s", np)], r.rep.Metrics[fmt.Sprintf("lambda_serve_k16_%dp_msgs_per_s", np)]
		r.rep.set(fmt.Sprintf("lambda_k16_%dp_ratio", np), shared.Value/serve.Value)
		p99s, p99v := r.rep.Metrics[fmt.Sprintf("lambda_shared_k16_%dp_p99_ms", np)], r.rep.Metrics[fmt.Sprintf("lambda_serve_k16_%dp_p99_ms", np)]
		r.rep.set(fmt.Sprintf("lambda_k16_%dp_p99_ratio", np), p99s.Value/p99v.Value)
	}
	return nil
}

type lambdaResult struct {
	msgsPerS, p50, p99, storePerAppend float64
	throttled, failed                  int64 // 429 and 503 answers the SDK saw; messages failed after its retries
}

func (r *runner) lambdaCase(ctx context.Context, t *LambdaTarget, proxy *countingProxy, c lambdaCase, n int) (lambdaResult, error) {
	prefix := fmt.Sprintf("lambda-%d-%s-%d", n, c.key(), time.Now().UnixNano())
	var url string
	switch c.mode {
	case "serve":
		s3cfg := t.S3
		s3cfg.Endpoint, s3cfg.Prefix = proxy.url, prefix
		store, err := s3store.New(ctx, s3cfg)
		if err != nil {
			return lambdaResult{}, err
		}
		srv, err := newServer(system.Config{Holder: "bench-serve", Logger: r.log}, store)
		if err != nil {
			return lambdaResult{}, err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = srv.Close(cctx)
		}()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return lambdaResult{}, err
		}
		hs := &http.Server{Handler: srv.Handler(api.AllRoles), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = hs.Serve(ln) }()
		defer hs.Close()
		url = "http://" + ln.Addr().String()
	default:
		env := map[string]string{
			"AWS_ACCESS_KEY_ID": t.S3.AccessKey, "AWS_SECRET_ACCESS_KEY": t.S3.SecretKey,
			"CAIRN_S3_ENDPOINT": proxy.url, "CAIRN_S3_BUCKET": t.S3.Bucket, "CAIRN_S3_PREFIX": prefix,
			"CAIRN_WRITE_MODE": c.mode, "CAIRN_LOG_LEVEL": "error",
		}
		concurrency := 32
		if c.mode == "affinity" {
			concurrency, env["CAIRN_WRITE_MODE"] = 1, "takeover"
		}
		f, err := lambdaemu.Start(lambdaemu.Config{
			Name: "cairn-node", Bootstrap: t.Bootstrap, Env: env, Timeout: 30 * time.Second,
			ReservedConcurrency: concurrency, Policy: lambdaemu.Random(uint64(n) + 1),
		})
		if err != nil {
			return lambdaResult{}, err
		}
		defer f.Close()
		url = f.URL()
	}

	tr := &countingTransport{base: http.DefaultTransport}
	var producers []*client.Producer
	for i := range c.producers {
		cl, err := client.New(url, client.WithHTTPClient(&http.Client{Transport: tr}))
		if err != nil {
			return lambdaResult{}, err
		}
		p, err := cl.Producer("p"+strconv.Itoa(i%c.pchannels), client.ProducerConfig{Name: fmt.Sprintf("bench-%d", i), VChannel: "v", MaxPending: lambdaMaxPending})
		if err != nil {
			return lambdaResult{}, err
		}
		producers = append(producers, p)
	}
	payload := randomBytes(1 << 10)
	run := func(d time.Duration) (acked, failed int64, err error) {
		var wg sync.WaitGroup
		var a, fl atomic.Int64
		deadline := time.Now().Add(d)
		for _, p := range producers {
			wg.Go(func() {
				var futures []*client.Future
				for ctx.Err() == nil && time.Now().Before(deadline) {
					f, err := p.SendAsync(ctx, client.Message{Payload: payload})
					if err != nil {
						fl.Add(1)
						return
					}
					futures = append(futures, f)
				}
				for _, f := range futures {
					if _, err := f.Wait(ctx); err != nil {
						fl.Add(1)
					} else {
						a.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return a.Load(), fl.Load(), ctx.Err()
	}
	// Warm up: cold starts, writers opened, shared terms adopted.
	if _, _, err := run(r.warmUp()); err != nil {
		return lambdaResult{}, err
	}
	tr.reset()
	proxy.kinds()
	reqs0 := proxy.requests.Load()
	start := time.Now()
	acked, failed, err := run(r.cfg.Duration)
	elapsed := time.Since(start)
	if err != nil {
		return lambdaResult{}, err
	}
	for _, p := range producers {
		_ = p.Close(ctx)
	}
	lat, appends, throttled := tr.snapshot()
	res := lambdaResult{
		msgsPerS:  float64(acked) / elapsed.Seconds(),
		p50:       lat.quantileMs(0.5),
		p99:       lat.quantileMs(0.99),
		throttled: throttled,
		failed:    failed,
	}
	if appends > 0 {
		res.storePerAppend = float64(proxy.requests.Load()-reqs0) / float64(appends)
	}
	r.progress("lambda %s: %.0f msg/s, append p50 %.1f ms p99 %.1f ms, %.1f store requests per append (%s), %d × 429/503, %d failed",
		c.key(), res.msgsPerS, res.p50, res.p99, res.storePerAppend, proxy.kinds(), res.throttled, res.failed)
	return res, nil
}

// countingTransport times every append request and counts 429 and 503
// answers.
type countingTransport struct {
	base      http.RoundTripper
	mu        sync.Mutex
	lat       latencies
	appends   int64
	throttled int64
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := t.base.RoundTrip(req)
	isAppend := req.Method == http.MethodPost
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil && (res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable) {
		t.throttled++
	}
	if isAppend && err == nil && res.StatusCode == http.StatusOK {
		t.lat = append(t.lat, time.Since(start))
		t.appends++
	}
	return res, err
}

func (t *countingTransport) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lat, t.appends, t.throttled = nil, 0, 0
}

func (t *countingTransport) snapshot() (latencies, int64, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := slices.Clone(t.lat)
	slices.Sort(l)
	return l, t.appends, t.throttled
}

// countingProxy forwards S3 requests to the real endpoint, keeping the
// Host header the client signed (SigV4 covers it), and counts them: the
// store requests of processes the bench cannot instrument (the emulated
// functions).
type countingProxy struct {
	url      string
	requests atomic.Int64
	srv      *http.Server

	mu     sync.Mutex
	byKind map[string]int64 // "PUT 412", "HEAD 200", …: where the requests go
}

func (p *countingProxy) count(kind string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byKind == nil {
		p.byKind = map[string]int64{}
	}
	p.byKind[kind]++
}

// kinds returns the requests counted by method and status since the last
// call, most frequent first, as "PUT 200 ×120, HEAD 200 ×80".
func (p *countingProxy) kinds() string {
	p.mu.Lock()
	m := p.byKind
	p.byKind = nil
	p.mu.Unlock()
	ks := slices.SortedFunc(maps.Keys(m), func(a, b string) int { return cmp.Compare(m[b], m[a]) })
	var b strings.Builder
	for i, k := range ks {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s ×%d", k, m[k])
	}
	return b.String()
}

func startCountingProxy(endpoint string) (*countingProxy, error) {
	target, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("store endpoint %q: %w", endpoint, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{url: "http://" + ln.Addr().String()}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
		p.requests.Add(1)
	}, ModifyResponse: func(res *http.Response) error {
		p.count(res.Request.Method + " " + strconv.Itoa(res.StatusCode))
		return nil
	}, ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		// Mostly a client that gave up (an attempt's timeout, a case
		// ending): counted with the others, not logged.
		p.count(r.Method + " unanswered")
		w.WriteHeader(http.StatusBadGateway)
	}}
	p.srv = &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *countingProxy) close() { _ = p.srv.Close() }
