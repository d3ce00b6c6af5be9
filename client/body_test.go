package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"unsafe"
)

// holdingTransport sends requests through http.DefaultTransport, except that
// when hold says so it keeps the request's body open, as a transport still
// sending it would (forwarding a copy), or also fails the attempt after
// reading half of it (a lost connection: the client retries).
type holdingTransport struct {
	hold func(attempt int) (keep, fail bool)

	mu       sync.Mutex
	attempts int
	held     []*bodyReader // kept open
	bufs     []*byte       // backing array of every append body sent
}

func (h *holdingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	br, ok := r.Body.(*bodyReader)
	if !ok {
		return http.DefaultTransport.RoundTrip(r)
	}
	h.mu.Lock()
	h.attempts++
	keep, fail := h.hold(h.attempts)
	h.bufs = append(h.bufs, unsafe.SliceData(*br.body.buf))
	if keep {
		h.held = append(h.held, br)
	}
	h.mu.Unlock()
	if fail {
		io.CopyN(io.Discard, br, int64(br.Len()/2))
		return nil, errors.New("connection reset mid-body")
	}
	body, err := io.ReadAll(br)
	if err != nil {
		return nil, err
	}
	if !keep {
		br.Close()
	}
	fwd := r.Clone(r.Context())
	fwd.Body, fwd.GetBody, fwd.ContentLength = io.NopCloser(bytes.NewReader(body)), nil, int64(len(body))
	return http.DefaultTransport.RoundTrip(fwd)
}

// sentSince reports whether an append body sent after the first n used
// buf's backing array.
func (h *holdingTransport) sentSince(n int, buf *byte) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.bufs[n:] {
		if b == buf {
			return true
		}
	}
	return false
}

// distinctSince counts the backing arrays of the append bodies sent after
// the first n.
func (h *holdingTransport) distinctSince(n int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[*byte]bool{}
	for _, b := range h.bufs[n:] {
		seen[b] = true
	}
	return len(seen)
}

// TestAppendBodyReusedOnlyAfterClose: the buffer of a binary append body
// is reused for a later append only once every attempt's body was closed —
// not while a transport may still read it, even after the call returned
// and even when a retry has landed — and then it is released for reuse.
func TestAppendBodyReusedOnlyAfterClose(t *testing.T) {
	url := newServer(t, serverOptions{})
	for _, tc := range []struct {
		name string
		hold func(attempt int) (keep, fail bool)
	}{
		{"reply before the body is closed", func(a int) (bool, bool) { return a == 1, false }},
		{"failed attempt still reading, retry landed", func(a int) (bool, bool) { return a == 1, a == 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &holdingTransport{hold: tc.hold}
			c, _ := newClient(t, url, WithHTTPClient(&http.Client{Transport: tr}))
			seq := uint64(0)
			appendOne := func() {
				t.Helper()
				seq++
				m := Message{VChannel: "v0", Payload: bytes.Repeat(fmt.Appendf(nil, "%08d", seq), 512),
					Key: &Key{Producer: "p", Epoch: 1, Seq: seq}}
				if _, err := c.Append(t.Context(), "p0", []Message{m}, AppendOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			appendOne()
			if len(tr.held) != 1 {
				t.Fatalf("%d bodies held, want 1", len(tr.held))
			}
			held := tr.held[0]
			heldBuf := *held.body.buf
			want := bytes.Clone(heldBuf)
			n := len(tr.bufs)
			for range 20 {
				appendOne()
			}
			if !bytes.Equal(heldBuf, want) {
				t.Fatal("the body of an attempt not closed yet was overwritten by a later append")
			}
			if tr.sentSince(n, unsafe.SliceData(heldBuf)) {
				t.Fatal("a later append reused the buffer of a body not closed yet")
			}
			if held.body.refs.Load() == 0 {
				t.Fatal("the buffer was released while a body of its call is open")
			}
			held.Close()
			if held.body.refs.Load() != 0 {
				t.Fatal("the buffer was not released once every body of its call was closed")
			}
			// And buffers are reused: 20 appends one after another share a
			// few (sync.Pool drops some Puts under the race detector, and a buffer
			// put on one P is not always got on another).
			n = len(tr.bufs)
			for range 20 {
				appendOne()
			}
			if distinct := tr.distinctSince(n); distinct > 15 {
				t.Fatalf("20 appends one after another used %d buffers", distinct)
			}
		})
	}
}
