package client

import (
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestTokenAuth: a server with a token refuses a client without it (at
// once: 401 is final) and serves one with it.
func TestTokenAuth(t *testing.T) {
	var requests atomic.Int64
	url := newServer(t, serverOptions{token: "s3cret", wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1); h.ServeHTTP(w, r) })
	}})
	for _, tok := range []string{"", "wrong"} {
		c, _ := newClient(t, url, WithToken(tok))
		before := requests.Load()
		_, err := c.Append(t.Context(), "p0", []Message{{VChannel: "v0", Key: &Key{Producer: "t", Seq: 1}}}, AppendOptions{})
		var ae *Error
		if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &ae) || ae.Status != 401 {
			t.Fatalf("append with token %q: %v", tok, err)
		}
		if n := requests.Load() - before; n != 1 {
			t.Fatalf("token %q: %d requests; 401 must not be retried", tok, n)
		}
		if err := c.Health(t.Context()); err != nil {
			t.Fatalf("healthz needs no token: %v", err)
		}
	}
	c, _ := newClient(t, url, WithToken("s3cret"))
	if _, err := c.Append(t.Context(), "p0", []Message{{VChannel: "v0"}}, AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PChannels(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestAdmin: status, leases, tail and sync of a pchannel.
func TestAdmin(t *testing.T) {
	url := newServer(t, serverOptions{})
	c, _ := newClient(t, url)
	acks := produce(t, c, "p1", "m", 5)
	last := acks[len(acks)-1]

	rows, err := c.PChannels(t.Context())
	if err != nil || len(rows) != 1 {
		t.Fatalf("pchannels: %+v, %v", rows, err)
	}
	r := rows[0]
	if r.PChannel != "p1" || r.Term != last.Term || !r.Live || r.Holder != "test-"+t.Name() ||
		r.Tail != last.ID.Offset+1 || r.TailSource != "writer" || r.Checkpoint != 0 {
		t.Fatalf("status row %+v; last ack %+v", r, last)
	}
	l, err := c.Lease(t.Context(), "p1")
	if err != nil || l != r.Lease {
		t.Fatalf("lease %+v, %v; want %+v", l, err, r.Lease)
	}
	if time.Until(l.Expires) <= 0 {
		t.Fatalf("live lease expired at %v", l.Expires)
	}
	ls, err := c.Leases(t.Context())
	if err != nil || len(ls) != 1 || ls[0].PChannel != "p1" {
		t.Fatalf("leases %+v, %v", ls, err)
	}
	tail, err := c.Tail(t.Context(), "p1")
	if err != nil || tail.NextOffset != last.ID.Offset+1 || tail.Source != "writer" {
		t.Fatalf("tail %+v, %v", tail, err)
	}
	s, err := c.Sync(t.Context(), "p1")
	if err != nil || s.TimeTick <= last.TimeTick || s.Term != last.Term {
		t.Fatalf("sync %+v, %v; last ack %+v", s, err, last)
	}
}

// TestErrorsMatchSentinels: final answers of the server match the
// sentinels and carry the code and message.
func TestErrorsMatchSentinels(t *testing.T) {
	url := newServer(t, serverOptions{maxBatchBytes: 1024})
	c, slept := newClient(t, url)
	ctx := t.Context()
	msg := func(v string, n int) []Message { return []Message{{VChannel: v, Payload: make([]byte, n)}} }

	_, err := c.Lease(ctx, "nope")
	check(t, "lease of an unknown pchannel", err, ErrNotFound, "unknown_pchannel", 404)
	_, err = c.Tail(ctx, "nope")
	check(t, "tail of an unknown pchannel", err, ErrNotFound, "unknown_pchannel", 404)
	_, err = c.Append(ctx, "p0", msg("bad/name", 1), AppendOptions{})
	check(t, "bad vchannel", err, ErrInvalid, "invalid_name", 400)
	_, err = c.Append(ctx, "p0", []Message{{VChannel: "v0", Type: "flush"}}, AppendOptions{})
	check(t, "control type", err, ErrInvalid, "invalid", 400)
	_, err = c.Append(ctx, "p0", msg("v0", 4096), AppendOptions{})
	check(t, "too large", err, ErrTooLarge, "too_large", 413)
	_, err = c.Read(ctx, "p0", ReadOptions{From: "id:x"})
	check(t, "bad position", err, ErrInvalid, "malformed", 400)

	first, err := c.Append(ctx, "p0", msg("v0", 1), AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tail := first[0].ID.Offset + 1
	wrong := tail + 5
	_, err = c.Append(ctx, "p0", msg("v0", 1), AppendOptions{ExpectedOffset: &wrong})
	check(t, "conditional append", err, ErrOffsetMismatch, "offset_mismatch", 412)
	var ae *Error
	if errors.As(err, &ae); !ae.HasNextOffset || ae.NextOffset != tail {
		t.Fatalf("offset mismatch carries next offset %d (%v), want %d", ae.NextOffset, ae.HasNextOffset, tail)
	}
	if acks, err := c.Append(ctx, "p0", msg("v0", 1), AppendOptions{ExpectedOffset: &tail}); err != nil || acks[0].ID.Offset != tail {
		t.Fatalf("conditional append at the tail: %+v, %v", acks, err)
	}
	if n := len(slept.all()); n != 0 {
		t.Fatalf("%d retries of final answers", n)
	}

	// A Producer whose batch the server refuses stops there.
	p, err := c.Producer("p0", ProducerConfig{VChannel: "v0", MaxBatchBytes: 8192})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendAsync(ctx, Message{Payload: make([]byte, 9000)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("message over the producer's batch size: %v", err)
	}
	_, err = p.Send(ctx, Message{Payload: make([]byte, 4096)})
	check(t, "producer batch over the server's limit", err, ErrTooLarge, "too_large", 413)
	if _, err := p.SendAsync(ctx, Message{Payload: []byte("x")}); !errors.Is(err, ErrStopped) || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("send after a refused batch: %v", err)
	}
	if err := p.Close(ctx); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("close: %v", err)
	}
}

func check(t *testing.T, what string, err, sentinel error, code string, status int) {
	t.Helper()
	var ae *Error
	if !errors.Is(err, sentinel) || !errors.As(err, &ae) || ae.Code != code || ae.Status != status || ae.Message == "" {
		t.Fatalf("%s: %v (%#v); want %v with code %s, status %d and a message", what, err, ae, sentinel, code, status)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"2", 2 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"99999", time.Hour},
	} {
		if got := parseRetryAfter(tc.h, now); got != tc.want {
			t.Errorf("Retry-After %q: %v, want %v", tc.h, got, tc.want)
		}
	}
}

// TestImportsNoServer: the SDK is usable without the server: it depends on
// no other package of this module but infra/backoff, the retry pause it
// shares with the server, and functions/api/wire, the API's bodies and
// codes, the only package of the server it may import; neither imports
// anything of the module itself.
func TestImportsNoServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const module = "github.com/cairnlog/cairn/"
	allowed := map[string]bool{module + "client": true, module + "infra/backoff": true, module + "functions/api/wire": true}
	for _, d := range strings.Fields(string(out)) {
		if strings.HasPrefix(d, module) && !allowed[d] {
			t.Errorf("client depends on %s", d)
		}
	}
}

// TestPathEscaping: a pchannel name reaches the server as one path element,
// whatever it holds (the server then judges it).
func TestPathEscaping(t *testing.T) {
	var got atomic.Value
	url := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Store(r.URL.EscapedPath()); h.ServeHTTP(w, r) })
	}})
	c, _ := newClient(t, url+"/")
	_, err := c.Tail(t.Context(), "a/b c")
	if p, _ := got.Load().(string); p != "/v1/pchannels/a%2Fb%20c/tail" {
		t.Fatalf("path sent: %q", p)
	}
	check(t, "tail of a bad name", err, ErrInvalid, "invalid_name", 400)
}
