package client

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
)

// maxPooledBody bounds the append bodies kept for reuse: the server takes
// at most 1 MiB of messages per append (a little more encoded); a larger
// body is a rare call whose buffer is not worth keeping.
const maxPooledBody = 4 << 20

// bodyPool keeps the buffers of binary append bodies for reuse (*[]byte).
// Encoding a MiB batch into a fresh buffer costs the allocation and
// clearing of that MiB, about as much as encoding it.
type bodyPool struct{ p sync.Pool }

func (p *bodyPool) get() *[]byte {
	if b, ok := p.p.Get().(*[]byte); ok {
		return b
	}
	return new([]byte)
}

func (p *bodyPool) put(b *[]byte) {
	if cap(*b) <= maxPooledBody {
		*b = (*b)[:0]
		p.p.Put(b)
	}
}

// sharedBody is the body of one append call, shared by the request of
// every attempt (and every body a transport gets from GetBody). Its buffer
// goes back to the pool only once nothing can read it any more: the call
// holds a reference until it returns, and each reader one until it is
// closed. A transport may still read a request body after RoundTrip
// returned — an attempt that timed out, a reply that came before the body
// was all sent — but never after closing it (http.RoundTripper), so a
// closed reader is the proof that its attempt is done with the bytes. A
// transport that never closes a body only costs the reuse of its buffer.
// Even a torn body could not land: the batch's CRC32C covers every byte.
type sharedBody struct {
	pool *bodyPool
	buf  *[]byte
	refs atomic.Int32
}

// newSharedBody shares buf, which the caller holds one reference to.
func newSharedBody(pool *bodyPool, buf *[]byte) *sharedBody {
	s := &sharedBody{pool: pool, buf: buf}
	s.refs.Store(1)
	return s
}

// open returns a new reader of the body, holding a reference until Close.
func (s *sharedBody) open() io.ReadCloser {
	s.refs.Add(1)
	return &bodyReader{Reader: bytes.NewReader(*s.buf), body: s}
}

// release drops one reference; the last one returns the buffer.
func (s *sharedBody) release() {
	if s.refs.Add(-1) == 0 {
		s.pool.put(s.buf)
	}
}

// bodyReader reads a sharedBody; its first Close drops its reference.
type bodyReader struct {
	*bytes.Reader
	body   *sharedBody
	closed atomic.Bool
}

func (r *bodyReader) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.body.release()
	}
	return nil
}
