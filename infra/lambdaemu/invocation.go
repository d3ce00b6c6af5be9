package lambdaemu

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// invocation is one event on its way through an environment.
type invocation struct {
	id        string
	payload   []byte
	out       chan outcome  // unbuffered: the waiter takes the one outcome
	abandoned chan struct{} // closed when the waiter stopped waiting
	abandon   func()

	// Guarded by f.mu.
	env      *Env
	deadline time.Time
	timer    *time.Timer
	answered bool // the runtime posted .../response or .../error
	settled  bool // its outcome is decided (sent or being sent)
}

func newInvocation(id string, payload []byte) *invocation {
	inv := &invocation{id: id, payload: payload, out: make(chan outcome), abandoned: make(chan struct{})}
	inv.abandon = sync.OnceFunc(func() { close(inv.abandoned) })
	return inv
}

// outcome is what the waiter gets: a response to read, or an error.
type outcome struct {
	envID   int
	resp    *response
	err     error
	errBody []byte // the error payload of a function error
}

// wait returns the invocation's outcome, or ctx's error; then the
// invocation is abandoned and runs on unobserved.
func (inv *invocation) wait(ctx context.Context) (outcome, error) {
	select {
	case o := <-inv.out:
		return o, nil
	case <-ctx.Done():
		inv.abandon()
		return outcome{}, ctx.Err()
	}
}

// send hands o to the waiter; false if the waiter is gone.
func (inv *invocation) send(o outcome) bool {
	select {
	case inv.out <- o:
		return true
	case <-inv.abandoned:
		return false
	}
}

// trailerErrorType is the trailer a runtime sets on a streamed response
// that failed part-way.
const trailerErrorType = "Lambda-Runtime-Function-Error-Type"

// response is the body the runtime is posting to .../response, read
// while it arrives; the runtime gets its 202 once the reader called
// finish.
type response struct {
	contentType string
	body        io.Reader
	req         *http.Request
	done        chan struct{}
	finish      func()
	errorType   string // the error trailer, known after finish
}

func newResponse(r *http.Request) *response {
	resp := &response{contentType: r.Header.Get("Content-Type"), body: r.Body, req: r, done: make(chan struct{})}
	resp.finish = sync.OnceFunc(func() {
		resp.errorType = r.Trailer.Get(trailerErrorType)
		close(resp.done)
	})
	return resp
}

// readAll reads the whole body and finishes.
func (r *response) readAll() ([]byte, error) {
	defer r.finish()
	return io.ReadAll(r.body)
}
