package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
)

// orderFront is a front for two API servers over one store: it sends every
// request to the current server, and injects faults into appends that
// carry after_seq: it holds some back until a later batch was refused out
// of sequence (so that batches overtake each other), answers some 503
// outcome_unknown before the server sees them, and loses the reply of
// others after they landed.
type orderFront struct {
	t       *testing.T
	current atomic.Pointer[http.Handler]
	appends atomic.Int64

	mu        sync.Mutex
	refused   chan struct{} // closed and replaced at each 412 out_of_sequence
	refusals  int
	held      int
	busy      int
	lostReply int
}

func (f *orderFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := *f.current.Load()
	if !(r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/append") && r.URL.Query().Has("after_seq")) {
		h.ServeHTTP(w, r)
		return
	}
	switch n := f.appends.Add(1); {
	case n%7 == 0:
		// Hold this batch until a later one meets 412 (or a while, if
		// nothing is behind it): the later one overtakes it.
		f.mu.Lock()
		f.held++
		refused := f.refused
		f.mu.Unlock()
		select {
		case <-refused:
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	case n%11 == 0:
		f.mu.Lock()
		f.busy++
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"code":"outcome_unknown","message":"test: reply lost before the server"}`)
		return
	case n%13 == 0:
		// The append lands; its reply is lost (the connection dies).
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		f.mu.Lock()
		f.lostReply++
		f.mu.Unlock()
		panic(http.ErrAbortHandler)
	}
	rec := &statusRecorder{ResponseWriter: w}
	h.ServeHTTP(rec, r)
	if rec.status == http.StatusPreconditionFailed {
		f.mu.Lock()
		f.refusals++
		close(f.refused)
		f.refused = make(chan struct{})
		f.mu.Unlock()
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// newOrderServer is an API server over store (not closed at cleanup: the
// test closes it, or it is closed at cleanup if the test did not).
func newOrderServer(t *testing.T, holder string, store objstore.Store) *api.Server {
	srv, err := newAPIServer(system.Config{
		Holder: holder, LeaseTTL: 4 * time.Second, LeaseWait: 2 * time.Second, CacheBytes: 4 << 20,
		Logger:           slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError})),
		TimeTickInterval: -1,
	}, store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx) // a second Close after the test's own is a no-op
	})
	return srv
}

// TestProducerOrderAtWindowUnderRetriesAndFailover: with eight batches in
// flight, batches overtaking each other on the way, 503 answers, lost
// replies, and the server killed midway (its successor takes the
// pchannel), the log holds every message once, in Send order, at the ID
// its ack names.
func TestProducerOrderAtWindowUnderRetriesAndFailover(t *testing.T) {
	store := objstore.NewMemory()
	a := newOrderServer(t, "node-a", store)
	b := newOrderServer(t, "node-b", store)
	front := &orderFront{t: t, refused: make(chan struct{})}
	ha, hb := a.Handler(api.AllRoles), b.Handler(api.AllRoles)
	front.current.Store(&ha)
	hs := httptest.NewServer(front)
	t.Cleanup(hs.Close)

	c, err := New(hs.URL, WithRetry(RetryPolicy{MaxAttempts: 20, MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Producer("p0", ProducerConfig{VChannel: "v0", Window: 8, MaxBatchMessages: 4})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1200
	fs := make([]*Future, n)
	for i := range fs {
		if i == n/2 {
			// Kill node A with batches in flight: node B serves from now on.
			front.current.Store(&hb)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			if err := a.Close(ctx); err != nil {
				t.Logf("closing node A: %v", err)
			}
			cancel()
		}
		if fs[i], err = p.SendAsync(t.Context(), Message{Payload: fmt.Appendf(nil, "m%04d", i)}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	closeProducer(t, p)

	front.mu.Lock()
	t.Logf("%d appends with after_seq: %d held back, %d refused out of sequence, %d answered 503, %d replies lost",
		front.appends.Load(), front.held, front.refusals, front.busy, front.lostReply)
	if front.refusals == 0 || front.busy == 0 || front.lostReply == 0 {
		t.Errorf("a fault was never injected: %d refusals, %d 503s, %d lost replies", front.refusals, front.busy, front.lostReply)
	}
	front.mu.Unlock()

	acks := map[MessageID]int{}
	for i, f := range fs {
		a, err := f.Wait(t.Context())
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if j, dup := acks[a.ID]; dup {
			t.Fatalf("messages %d and %d acked at %v", j, i, a.ID)
		}
		acks[a.ID] = i
	}
	got := readAll(t, c, "p0")
	if len(got) != n {
		t.Fatalf("read %d messages, want each of %d once", len(got), n)
	}
	for i, d := range got {
		if string(d.Payload) != fmt.Sprintf("m%04d", i) || d.Key == nil || d.Key.Seq != uint64(i) {
			t.Fatalf("log position %d holds %q (key %+v): out of Send order", i, d.Payload, d.Key)
		}
		if j, ok := acks[d.ID]; !ok || j != i {
			t.Fatalf("log position %d is %v, but message %d was acked there", i, d.ID, j)
		}
	}
}

// TestProducerFailsBatchesBehindAFailedOne: when a batch fails for good,
// the batches sent behind it are not written after it (no gap in the log):
// every message up to the first failure is in the log in order, and none
// after it.
func TestProducerFailsBatchesBehindAFailedOne(t *testing.T) {
	var n atomic.Int64
	url := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isAppend(r) && n.Add(1) == 3 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusConflict)
				io.WriteString(w, `{"code":"fenced","message":"test: fenced"}`)
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
	c, _ := newClient(t, url)
	p, err := c.Producer("p0", ProducerConfig{VChannel: "v0", Window: 4, MaxBatchMessages: 2})
	if err != nil {
		t.Fatal(err)
	}
	var fs []*Future
	for i := range 40 {
		f, err := p.SendAsync(t.Context(), Message{Payload: fmt.Appendf(nil, "m%02d", i)})
		if errors.Is(err, ErrStopped) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, ErrFenced) {
		t.Fatalf("close: %v, want the fenced batch's error", err)
	}
	firstFailed := -1
	for i, f := range fs {
		_, err := f.Wait(t.Context())
		if err != nil && firstFailed < 0 {
			firstFailed = i
		}
		if err == nil && firstFailed >= 0 {
			t.Fatalf("message %d acked after message %d failed", i, firstFailed)
		}
	}
	got := readAll(t, c, "p0")
	if firstFailed < 0 || len(got) != firstFailed {
		t.Fatalf("read %d messages; the first failure was message %d", len(got), firstFailed)
	}
	for i, d := range got {
		if string(d.Payload) != fmt.Sprintf("m%02d", i) {
			t.Fatalf("log position %d holds %q", i, d.Payload)
		}
	}
}

// TestVChannelProducerOrderAtWindow: a vchannel's Producer sends after_seq
// on the vchannel append route too; with batches overtaking each other the
// vchannel reads back in Send order.
func TestVChannelProducerOrderAtWindow(t *testing.T) {
	var n atomic.Int64
	url := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isAppend(r) && r.URL.Query().Has("after_seq") && n.Add(1)%5 == 0 {
				// Hold this batch past the server's wait for it, so that
				// the next one meets 412 and is sent again.
				time.Sleep(150 * time.Millisecond)
			}
			h.ServeHTTP(w, r)
		})
	}})
	c, _ := newClient(t, url)
	if _, err := c.CreateVChannel(t.Context(), "orders", "p1"); err != nil {
		t.Fatal(err)
	}
	p, err := c.VChannelProducer("orders", ProducerConfig{Window: 4, MaxBatchMessages: 3})
	if err != nil {
		t.Fatal(err)
	}
	const total = 150
	for i := range total {
		if _, err := p.SendAsync(t.Context(), Message{Payload: fmt.Appendf(nil, "m%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	closeProducer(t, p)
	var got []Delivery
	for _, d := range readAll(t, c, "p1") {
		if d.VChannel == "orders" && d.Type == "data" {
			got = append(got, d)
		}
	}
	if len(got) != total {
		t.Fatalf("read %d messages of orders, want %d", len(got), total)
	}
	for i, d := range got {
		if string(d.Payload) != fmt.Sprintf("m%03d", i) {
			t.Fatalf("position %d holds %q: out of Send order", i, d.Payload)
		}
	}
}
