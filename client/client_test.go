package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
)

// The tests run the SDK against the real HTTP API (functions/api over a
// memory store), served by httptest, as cmd/cairn's serve builds it.

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// serverOptions shape a test server.
type serverOptions struct {
	token         string
	maxBatchBytes int
	startupDelay  time.Duration
	// wrap, if set, wraps the API handler (fault injection).
	wrap func(http.Handler) http.Handler
}

// newServer serves the API over a fresh memory store until the test ends
// and returns its URL.
func newServer(t *testing.T, o serverOptions) string {
	t.Helper()
	sys, err := system.New(system.Config{
		Holder:        "test-" + t.Name(),
		LeaseTTL:      4 * time.Second,
		LeaseWait:     300 * time.Millisecond,
		CacheBytes:    4 << 20,
		MaxBatchBytes: o.maxBatchBytes,
		Logger:        slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		// No timetick batches: offsets stay exact on a slow machine.
		TimeTickInterval:    -1,
		ScannerStartupDelay: o.startupDelay,
	}, objstore.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Token: o.token}, sys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("server close: %v", err)
		}
	})
	var h http.Handler = srv.Handler(api.AllRoles)
	if o.wrap != nil {
		h = o.wrap(h)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL
}

// sleeps records the pauses of a client instead of sleeping them.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// newClient is a client of url whose retry pauses are recorded, not slept.
func newClient(t *testing.T, url string, opts ...Option) (*Client, *sleeps) {
	t.Helper()
	c, err := New(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	s := &sleeps{}
	c.sleep = s.sleep
	return c, s
}

func closeProducer(t *testing.T, p *Producer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("producer close: %v", err)
	}
}

// readAll reads pchannel from the start to the tail.
func readAll(t *testing.T, c *Client, pchannel string) []Delivery {
	t.Helper()
	co, err := c.Consumer(pchannel, ConsumerConfig{Wait: -1, Max: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []Delivery
	for {
		ds, err := co.Poll(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			return out
		}
		out = append(out, ds...)
	}
}

// TestProducerAcksInOrderUnderPipelining: with several appends in flight
// and the server answering them out of order, every Future completes only
// after all earlier ones, each ack is where its message landed, and every
// message lands once.
func TestProducerAcksInOrderUnderPipelining(t *testing.T) {
	var inFlight, maxInFlight atomic.Int64
	url := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/append") {
				n := inFlight.Add(1)
				defer inFlight.Add(-1)
				for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
				}
				time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond) // answers overtake each other
			}
			h.ServeHTTP(w, r)
		})
	}})
	c, _ := newClient(t, url)
	p, err := c.Producer("p0", ProducerConfig{VChannel: "v0", Window: 4, MaxBatchMessages: 5})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	fs := make([]*Future, n)
	for i := range fs {
		if fs[i], err = p.SendAsync(t.Context(), Message{Payload: fmt.Appendf(nil, "m%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait on futures out of order; whenever one is done, every earlier
	// one must be.
	for _, k := range []int{n - 1, n / 2, n / 3, 7, 0} {
		if _, err := fs[k].Wait(t.Context()); err != nil {
			t.Fatalf("message %d: %v", k, err)
		}
		for j := 0; j < k; j++ {
			select {
			case <-fs[j].Done():
			default:
				t.Fatalf("future %d done before future %d", k, j)
			}
		}
	}
	closeProducer(t, p)
	if maxInFlight.Load() < 2 {
		t.Errorf("at most %d append in flight: no pipelining", maxInFlight.Load())
	}

	acks := map[MessageID]int{}
	for i, f := range fs {
		a, err := f.Wait(t.Context())
		if err != nil || a.Duplicate {
			t.Fatalf("message %d: %+v, %v", i, a, err)
		}
		if k := f.Key(); k.Producer != p.Name() || k.Epoch != p.Epoch() || k.Seq != uint64(i) {
			t.Fatalf("message %d has key %+v", i, k)
		}
		if j, dup := acks[a.ID]; dup {
			t.Fatalf("messages %d and %d acked at the same ID %v", j, i, a.ID)
		}
		acks[a.ID] = i
	}
	got := readAll(t, c, "p0")
	if len(got) != n {
		t.Fatalf("read %d messages, want %d", len(got), n)
	}
	for _, d := range got {
		i, ok := acks[d.ID]
		if !ok || string(d.Payload) != fmt.Sprintf("m%03d", i) || d.Key == nil || d.Key.Seq != uint64(i) {
			t.Fatalf("read %v %q key %+v; acks say message %d (known: %v)", d.ID, d.Payload, d.Key, i, ok)
		}
	}
}

// dropReply is a transport that loses the reply of the first append after
// the server handled it, as a connection reset would.
type dropReply struct {
	inner   http.RoundTripper
	dropped atomic.Bool
	body    []byte // the lost reply
	appends atomic.Int64
}

func (d *dropReply) RoundTrip(r *http.Request) (*http.Response, error) {
	isAppend := r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/append")
	if isAppend {
		d.appends.Add(1)
	}
	res, err := d.inner.RoundTrip(r)
	if err != nil || !isAppend || !d.dropped.CompareAndSwap(false, true) {
		return res, err
	}
	d.body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	return nil, errors.New("simulated connection reset: reply lost")
}

// TestProducerRetriesLostReplyWithSameKeys: the first append lands but its
// reply is lost; the retry carries the same keys, gets the same IDs back,
// and the messages are in the log once.
func TestProducerRetriesLostReplyWithSameKeys(t *testing.T) {
	url := newServer(t, serverOptions{})
	tr := &dropReply{inner: http.DefaultTransport}
	c, _ := newClient(t, url, WithHTTPClient(&http.Client{Transport: tr}))
	p, err := c.Producer("p0", ProducerConfig{VChannel: "v0", MaxBatchMessages: 3})
	if err != nil {
		t.Fatal(err)
	}
	var fs []*Future
	for i := range 3 {
		f, err := p.SendAsync(t.Context(), Message{Payload: fmt.Appendf(nil, "m%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	closeProducer(t, p)

	var lost wire.AppendResponse
	err = json.Unmarshal(tr.body, &lost)
	if err == nil && lost.AckRuns != nil { // the SDK asks for its acks as runs
		lost.Acks, err = wire.ExpandAckRuns(lost.AckRuns, len(fs))
	}
	if err != nil || len(lost.Acks) == 0 {
		t.Fatalf("the lost reply %q: %v", tr.body, err)
	}
	if tr.appends.Load() < 2 {
		t.Fatalf("%d append requests: no retry", tr.appends.Load())
	}
	for i, f := range fs {
		a, err := f.Wait(t.Context())
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if i < len(lost.Acks) {
			want := MessageID{Offset: lost.Acks[i].Offset, Index: lost.Acks[i].Index}
			if a.ID != want || !a.Duplicate {
				t.Fatalf("message %d: ack %+v, want the lost reply's %v marked duplicate", i, a, want)
			}
		}
	}
	got := readAll(t, c, "p0")
	if len(got) != 3 {
		t.Fatalf("read %d messages, want each of 3 once: %+v", len(got), got)
	}
	for i, d := range got {
		if string(d.Payload) != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d: %q", i, d.Payload)
		}
	}
}

// TestAppendWithoutKeysIsNotRetriedBlindly: an append without keys whose
// reply is lost fails with ErrOutcomeUnknown after one attempt.
func TestAppendWithoutKeysIsNotRetriedBlindly(t *testing.T) {
	url := newServer(t, serverOptions{})
	tr := &dropReply{inner: http.DefaultTransport}
	c, _ := newClient(t, url, WithHTTPClient(&http.Client{Transport: tr}))
	_, err := c.Append(t.Context(), "p0", []Message{{VChannel: "v0", Payload: []byte("x")}}, AppendOptions{})
	if !errors.Is(err, ErrOutcomeUnknown) || tr.appends.Load() != 1 {
		t.Fatalf("append: %v after %d attempts; want ErrOutcomeUnknown after 1", err, tr.appends.Load())
	}
}

// busyFirst answers the first n requests matching match with status,
// code and Retry-After, before they reach the server.
func busyFirst(n int64, match func(*http.Request) bool, status int, code, retryAfter string) func(http.Handler) http.Handler {
	var left atomic.Int64
	left.Store(n)
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if match(r) && left.Add(-1) >= 0 {
				w.Header().Set("Retry-After", retryAfter)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"code":%q,"message":"busy (test)"}`, code)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

func isAppend(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/append") }

// TestRetryAfterHonoured: a 503 with Retry-After is retried no sooner than
// the server asked, with the same keys.
func TestRetryAfterHonoured(t *testing.T) {
	for _, code := range []string{"lease_held", "outcome_unknown"} {
		t.Run(code, func(t *testing.T) {
			url := newServer(t, serverOptions{wrap: busyFirst(2, isAppend, 503, code, "3")})
			c, slept := newClient(t, url)
			p, err := c.Producer("p0", ProducerConfig{VChannel: "v0"})
			if err != nil {
				t.Fatal(err)
			}
			a, err := p.Send(t.Context(), Message{Payload: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
			closeProducer(t, p)
			d := slept.all()
			if len(d) != 2 || d[0] < 3*time.Second || d[1] < 3*time.Second {
				t.Fatalf("pauses %v: want 2, each at least the Retry-After of 3s", d)
			}
			if got := readAll(t, c, "p0"); len(got) != 1 || got[0].ID != a.ID {
				t.Fatalf("read %+v, want one message at %v", got, a.ID)
			}
		})
	}
}

// TestRetriesRunOut: a server busy on every attempt fails the call with
// ErrUnavailable after MaxAttempts; a Producer stops there.
func TestRetriesRunOut(t *testing.T) {
	url := newServer(t, serverOptions{wrap: busyFirst(100, isAppend, 503, "lease_held", "1")})
	c, slept := newClient(t, url, WithRetry(RetryPolicy{MaxAttempts: 3}))
	p, err := c.Producer("p0", ProducerConfig{VChannel: "v0"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Send(t.Context(), Message{Payload: []byte("x")})
	var ae *Error
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrOutcomeUnknown) || !errors.As(err, &ae) || ae.Code != "lease_held" {
		t.Fatalf("send: %v; want ErrUnavailable from lease_held", err)
	}
	if n := len(slept.all()); n != 2 {
		t.Fatalf("%d pauses, want 2 (3 attempts)", n)
	}
	if _, err := p.SendAsync(t.Context(), Message{Payload: []byte("y")}); !errors.Is(err, ErrStopped) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("send after the failure: %v; want ErrStopped wrapping the cause", err)
	}
	if err := p.Close(t.Context()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("close: %v", err)
	}
}

// TestProducerRetriesTimeoutWithSameKeys: the first append lands but its
// answer is held until the client's attempt timeout cuts it; the retry
// learns the IDs, and the message is in the log once.
func TestProducerRetriesTimeoutWithSameKeys(t *testing.T) {
	var held atomic.Bool
	url := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isAppend(r) && held.CompareAndSwap(false, true) {
				// It lands, whenever the client gives up...
				h.ServeHTTP(httptest.NewRecorder(), r.WithContext(context.WithoutCancel(r.Context())))
				<-r.Context().Done() // ...but the answer never leaves.
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
	c, slept := newClient(t, url, WithRetry(RetryPolicy{AttemptTimeout: 200 * time.Millisecond}))
	p, err := c.Producer("p0", ProducerConfig{VChannel: "v0"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Send(t.Context(), Message{Payload: []byte("x")})
	if err != nil || !a.Duplicate || len(slept.all()) != 1 {
		t.Fatalf("send: %+v, %v after %d retries; want the first copy's ack, marked duplicate, after 1", a, err, len(slept.all()))
	}
	closeProducer(t, p)
	if got := readAll(t, c, "p0"); len(got) != 1 || got[0].ID != a.ID {
		t.Fatalf("read %+v, want one message at %v", got, a.ID)
	}
}

// TestReadDuringStartupDelay: a read held back by the server's startup
// delay says so (Paused); IgnorePause reads through it.
func TestReadDuringStartupDelay(t *testing.T) {
	url := newServer(t, serverOptions{startupDelay: time.Hour})
	c, _ := newClient(t, url)
	if _, err := c.Append(t.Context(), "p0", []Message{{VChannel: "v0", Payload: []byte("x")}}, AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Read(t.Context(), "p0", ReadOptions{Wait: 50 * time.Millisecond})
	if err != nil || !r.Paused || len(r.Messages) != 0 {
		t.Fatalf("read during the delay: %+v, %v", r, err)
	}
	r, err = c.Read(t.Context(), "p0", ReadOptions{IgnorePause: true})
	if err != nil || r.Paused || len(r.Messages) != 1 {
		t.Fatalf("read ignoring the delay: %+v, %v", r, err)
	}
}

// TestErrorCarriesRef: the server's reference for a logged cause reaches
// the caller's *Error.
func TestErrorCarriesRef(t *testing.T) {
	url := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"code":"internal","message":"internal error (ref 0a1b2c)","ref":"0a1b2c"}`)
		})
	}})
	c, _ := newClient(t, url)
	_, err := c.Append(t.Context(), "p0", []Message{{VChannel: "v0", Payload: []byte("x")}}, AppendOptions{})
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != "internal" || ae.Ref != "0a1b2c" {
		t.Fatalf("append: %v (%+v), want an internal *Error with ref 0a1b2c", err, ae)
	}
}

// newAPIServer builds the system of cfg over store and its HTTP API with
// the API's defaults, as `cairn serve` does.
func newAPIServer(cfg system.Config, store objstore.Store) (*api.Server, error) {
	sys, err := system.New(cfg, store)
	if err != nil {
		return nil, err
	}
	return api.New(api.Config{}, sys)
}

// TestAppendReadsAcksOrRuns: the SDK prefers its acks as runs, and reads
// whichever form a server answers — runs, or one ack per message from a
// server that does not know them — to the same acks; runs that do not
// stand for the messages sent are ErrInternal, never wrong IDs.
func TestAppendReadsAcksOrRuns(t *testing.T) {
	acks := []wire.Ack{{Offset: 4, Index: 0, TimeTick: 10}, {Offset: 4, Index: 1, TimeTick: 11}, {Offset: 2, Index: 7, TimeTick: 3, Duplicate: true}}
	for name, c := range map[string]struct {
		answer  wire.AppendResponse
		wantErr error
	}{
		"runs":            {wire.AppendResponse{PChannel: "p0", Term: 3, AckRuns: wire.AckRunsOf(acks)}, nil},
		"one per message": {wire.AppendResponse{PChannel: "p0", Term: 3, Acks: acks}, nil},
		"runs short":      {wire.AppendResponse{PChannel: "p0", Term: 3, AckRuns: wire.AckRunsOf(acks[:2])}, ErrInternal},
		"runs of no acks": {wire.AppendResponse{PChannel: "p0", Term: 3, AckRuns: []wire.AckRun{{Offset: 4, Count: 0}}}, ErrInternal},
	} {
		t.Run(name, func(t *testing.T) {
			var prefer string
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				prefer = r.Header.Get("Prefer")
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(c.answer)
			}))
			defer hs.Close()
			cl, _ := newClient(t, hs.URL)
			msgs := []Message{{VChannel: "v", Payload: []byte("a")}, {VChannel: "v", Payload: []byte("b")}, {VChannel: "v", Payload: []byte("c")}}
			got, err := cl.Append(t.Context(), "p0", msgs, AppendOptions{})
			if prefer != wire.PreferAckRuns {
				t.Fatalf("Prefer %q, want %q", prefer, wire.PreferAckRuns)
			}
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("%v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(acks) {
				t.Fatalf("%v, %d acks", err, len(got))
			}
			for i, a := range acks {
				if got[i].ID != (MessageID{Offset: a.Offset, Index: a.Index}) || got[i].TimeTick != a.TimeTick || got[i].Duplicate != a.Duplicate || got[i].Term != 3 {
					t.Fatalf("ack %d: %+v, want %+v", i, got[i], a)
				}
			}
		})
	}
}
