package lambdaemu

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// The emulated account and the trace header every invocation carries.
const (
	AccountID = "123456789012"
	traceID   = "Root=1-00000000-000000000000000000000000;Sampled=0"
)

// Extension event types.
const (
	eventInvoke   = "INVOKE"
	eventShutdown = "SHUTDOWN"
)

func (f *Function) arn() string {
	return "arn:aws:lambda:" + f.cfg.Region + ":" + AccountID + ":function:" + f.cfg.Name
}

// extension is one registered extension of an environment.
type extension struct {
	name     string
	external bool
	events   map[string]bool
	waiting  bool        // blocked in event/next; guarded by f.mu
	next     chan []byte // capacity 1: the event its event/next returns
}

// deliver hands ev to the extension's pending event/next. Called with
// f.mu held.
func (x *extension) deliver(ev []byte) {
	select {
	case x.next <- ev:
	default: // an event/next the extension dropped still holds one
	}
}

// runtimeAPI serves the Runtime API and the Extensions API of e, on e's
// own listener (AWS_LAMBDA_RUNTIME_API).
func (e *Env) runtimeAPI() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", e.handleNext)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", e.handleResponse)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", e.handleError)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", e.handleInitError)
	mux.HandleFunc("POST /2020-01-01/extension/register", e.handleRegister)
	mux.HandleFunc("GET /2020-01-01/extension/event/next", e.handleEventNext)
	mux.HandleFunc("POST /2020-01-01/extension/init/error", e.handleInitError)
	mux.HandleFunc("POST /2020-01-01/extension/exit/error", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		renderStatus(w, http.StatusAccepted)
	})
	return mux
}

// renderError answers as the Runtime API does: {"errorMessage", "errorType"}.
func renderError(w http.ResponseWriter, status int, errorType, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"errorMessage": fmt.Sprintf(format, args...), "errorType": errorType})
}

func renderStatus(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"status":"OK"}`+"\n")
}

// handleNext completes the runtime's invocation (if any) and blocks until
// the next one is routed to e.
func (e *Env) handleNext(w http.ResponseWriter, r *http.Request) {
	f := e.f
	f.mu.Lock()
	if inv := e.current; inv != nil && !inv.answered {
		f.unlock()
		renderError(w, http.StatusForbidden, "InvalidStateTransition", "next called before invocation %s was answered", inv.id)
		return
	}
	e.runtimeWaiting = true
	f.settle(e)
	f.unlock()
	select {
	case inv := <-e.invokes:
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", f.arn())
		h.Set("Lambda-Runtime-Trace-Id", traceID)
		h.Set("Content-Type", "application/json")
		_, _ = w.Write(inv.payload)
		_ = http.NewResponseController(w).Flush()
		if f.cfg.Hooks.Invoked != nil {
			f.cfg.Hooks.Invoked(e, inv.id)
		}
	case <-r.Context().Done():
	case <-e.dead:
	}
}

// answering marks the invocation id as answered; it returns it and
// whether its outcome is still to be sent, or writes the refusal.
func (e *Env) answering(w http.ResponseWriter, id string) (*invocation, bool) {
	f := e.f
	f.mu.Lock()
	defer f.unlock()
	inv := e.current
	switch {
	case inv == nil || inv.id != id:
		renderError(w, http.StatusBadRequest, "InvalidRequestID", "invocation %s is not running", id)
		return nil, false
	case inv.answered:
		renderError(w, http.StatusForbidden, "InvalidStateTransition", "invocation %s was answered already", id)
		return nil, false
	}
	inv.answered = true
	send := !inv.settled
	inv.settled = true
	return inv, send
}

// handleResponse hands the runtime's response to the waiting client while
// it arrives (a streamed response is never buffered), and answers 202
// once the client has read it.
func (e *Env) handleResponse(w http.ResponseWriter, r *http.Request) {
	inv, send := e.answering(w, r.PathValue("id"))
	if inv == nil {
		return
	}
	resp := newResponse(r)
	if send && inv.send(outcome{envID: e.id, resp: resp}) {
		select {
		case <-resp.done:
		case <-e.dead:
			return
		}
	} else {
		_, _ = io.Copy(io.Discard, r.Body)
		resp.finish()
	}
	if resp.errorType != "" {
		e.f.mu.Lock()
		e.stats.FunctionErrors++
		e.f.mu.Unlock()
	}
	renderStatus(w, http.StatusAccepted)
}

// handleError answers the invocation with the runtime's error.
func (e *Env) handleError(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	inv, send := e.answering(w, r.PathValue("id"))
	if inv == nil {
		return
	}
	e.f.mu.Lock()
	e.stats.FunctionErrors++
	e.f.mu.Unlock()
	errorType := r.Header.Get(trailerErrorType)
	if errorType == "" {
		var p struct {
			ErrorType string `json:"errorType"`
		}
		_ = json.Unmarshal(body, &p)
		errorType = p.ErrorType
	}
	if send {
		inv.send(outcome{envID: e.id, err: fmt.Errorf("%w: %s: %s", ErrFunction, errorType, body), errBody: body})
	}
	renderStatus(w, http.StatusAccepted)
}

// handleInitError records a failed init phase (from the runtime or an
// extension) and ends the environment, as Lambda does.
func (e *Env) handleInitError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f := e.f
	f.mu.Lock()
	if e.inited {
		f.unlock()
		renderError(w, http.StatusForbidden, "InvalidStateTransition", "init error after the init phase")
		return
	}
	e.initErr = body
	e.stats.InitErrors++
	reason := fmt.Errorf("%w: Runtime.InitError", ErrInit)
	e.exitReason = reason
	f.unlock()
	renderStatus(w, http.StatusAccepted)
	go e.end(reason, false)
}

// handleRegister registers an extension during the init phase. Extensions
// Config.Extensions started are external; any other (such as the one
// aws-lambda-go registers for SIGTERM) is internal and may not subscribe
// to SHUTDOWN.
func (e *Env) handleRegister(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get("Lambda-Extension-Name")
	if name == "" {
		renderError(w, http.StatusForbidden, "Extension.InvalidExtensionName", "empty extension name")
		return
	}
	var req struct {
		Events []string `json:"events"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		renderError(w, http.StatusForbidden, "InvalidRequestFormat", "%v", err)
		return
	}
	f := e.f
	f.mu.Lock()
	defer f.unlock()
	if e.inited {
		renderError(w, http.StatusForbidden, "Extension.RegistrationClosed", "extension registration closed already")
		return
	}
	x := &extension{name: name, events: map[string]bool{}, next: make(chan []byte, 1)}
	if e.names[name] {
		x.external = true
		for _, o := range e.extensions {
			if o.name == name {
				renderError(w, http.StatusForbidden, "Extension.InvalidState", "extension %s registered already", name)
				return
			}
		}
	}
	for _, ev := range req.Events {
		switch {
		case ev != eventInvoke && ev != eventShutdown:
			renderError(w, http.StatusForbidden, "Extension.InvalidEventType", "%s: ErrorInvalidEventType", ev)
			return
		case ev == eventShutdown && !x.external:
			renderError(w, http.StatusForbidden, "Extension.InvalidEventType", "%s: ShutdownEventNotSupportedForInternalExtension", ev)
			return
		}
		x.events[ev] = true
	}
	id := rand.Text()
	e.extensions[id] = x
	if x.external {
		e.unregistered--
	}
	w.Header().Set("Lambda-Extension-Identifier", id)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"functionName": f.cfg.Name, "functionVersion": "$LATEST", "handler": "bootstrap"})
}

// handleEventNext blocks until the extension's next event; asking for it
// is how an extension says it is done with the last one.
func (e *Env) handleEventNext(w http.ResponseWriter, r *http.Request) {
	f := e.f
	f.mu.Lock()
	x := e.extensions[r.Header.Get("Lambda-Extension-Identifier")]
	if x == nil {
		f.unlock()
		renderError(w, http.StatusForbidden, "Extension.UnknownExtensionIdentifier", "unknown extension identifier")
		return
	}
	x.waiting = true
	if e.shutdown != nil && x.events[eventShutdown] {
		x.waiting = false
		x.deliver(e.shutdown)
	} else {
		f.settle(e)
	}
	f.unlock()
	select {
	case ev := <-x.next:
		w.Header().Set("Lambda-Extension-Event-Identifier", rand.Text())
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(ev)
	case <-r.Context().Done():
	case <-e.dead:
	}
}
