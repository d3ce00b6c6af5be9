package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
)

// Role says which function serves a route. A Lambda function mounts its own
// role's routes; `cairn serve` mounts them all.
type Role uint8

const (
	// RoleNode: appends, reads, tail and sync (functions/node); it keeps the
	// writer pool.
	RoleNode Role = 1 << iota
	// RoleCoordinator: leases, the pchannel status table and the vchannel
	// registry (functions/coordinator).
	RoleCoordinator
	// RoleSnapshot: flush, snapshots and restores (functions/snapshot).
	RoleSnapshot

	// AllRoles is every route, as `cairn serve` mounts them.
	AllRoles = RoleNode | RoleCoordinator | RoleSnapshot
)

// Server is the HTTP API over one system (system.System): every route and
// its metrics (on the system's registry: one Server per System). Build it once per process (a Lambda container
// keeps it across invocations) and mount Handler. Safe for concurrent use.
type Server struct {
	cfg     Config
	sc      system.Config // the system's
	sys     *system.System
	metrics *metrics
	log     *slog.Logger
	routes  []Route
	waiters chan struct{} // semaphore of reads waiting at the tail
}

// New builds the HTTP API of sys: cfg's defaults applied, then checked. It
// sends no request.
func New(cfg Config, sys *system.System) (*Server, error) {
	sc := sys.Config()
	cfg.EnsureDefaults(sc)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, sc: sc, sys: sys, log: sc.Logger, waiters: make(chan struct{}, cfg.MaxWaiters)}
	s.metrics = newMetrics(sys.Metrics())
	s.routes = s.routeTable()
	return s, nil
}

// System is the system the server serves.
func (s *Server) System() *system.System { return s.sys }

// Close closes the system (system.System.Close): restore jobs stopped,
// writers closed, leases released.
func (s *Server) Close(ctx context.Context) error { return s.sys.Close(ctx) }

// Shutdown closes the server within the system's ShutdownTimeout and logs
// the outcome. It is the SIGTERM callback of the Lambda functions.
func (s *Server) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), s.sc.ShutdownTimeout)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		s.log.Warn("shutdown", "err", err)
		return
	}
	s.log.Info("shutdown complete: writers closed, leases released")
}

// Route is one registered route.
type Route struct {
	Method string // "GET", "POST"
	Path   string // a net/http pattern path: "/v1/pchannels/{p}/append"
	Role   Role   // the function that serves it; 0: every function
	handle handler
}

// Pattern is the route's net/http pattern, "METHOD /path".
func (r Route) Pattern() string { return r.Method + " " + r.Path }

// Routes lists every route of the API, of every role.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// Handler serves the routes of roles (and the common ones: /healthz,
// /metrics, /v1/openapi.yaml). Unknown paths answer 404 and known paths with
// another method 405, both as JSON errors.
func (s *Server) Handler(roles Role) http.Handler {
	mux := http.NewServeMux()
	paths := http.NewServeMux() // method-less patterns, to tell 405 from 404
	seen := map[string]bool{}
	for _, rt := range s.routes {
		if rt.Role != 0 && rt.Role&roles == 0 {
			continue
		}
		mux.Handle(rt.Pattern(), s.wrap(rt))
		if !seen[rt.Path] {
			seen[rt.Path] = true
			paths.Handle(rt.Path, http.NotFoundHandler())
		}
	}
	mux.Handle("/", s.wrap(Route{Path: "unmatched", handle: func(w http.ResponseWriter, r *http.Request) error {
		if _, pat := paths.Handler(r); pat != "" {
			return errorf(http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path)
		}
		return errorf(http.StatusNotFound, wire.CodeNotFound, "no route for %s %s", r.Method, r.URL.Path)
	}}))
	return s.guard(mux)
}

// guard runs before routing: it refuses paths that the mux would clean
// (".", "..", "//" elements: a 400, never a redirect), and checks the bearer
// token (not needed by GET or HEAD /healthz).
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.startBody(w, r) // refused requests too: net/http drains their bodies
		p := r.URL.Path
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.Contains(p, "/./") ||
			strings.Contains(p, "/../") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") {
			s.countError(w, r, "invalid_path", errorf(http.StatusBadRequest, wire.CodeInvalidName, "path %q has an empty, '.' or '..' element", p))
			return
		}
		// HEAD is GET without a body (the mux serves GET routes to HEAD too):
		// probes that send HEAD /healthz need no token either.
		if s.cfg.Token != "" && !((r.Method == http.MethodGet || r.Method == http.MethodHead) && p == "/healthz") {
			const prefix = "Bearer "
			h := r.Header.Get("Authorization")
			ok := len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) &&
				subtle.ConstantTimeCompare([]byte(h[len(prefix):]), []byte(s.cfg.Token)) == 1
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="cairn"`)
				s.countError(w, r, "unauthorized", errorf(http.StatusUnauthorized, wire.CodeUnauthorized, "missing or wrong bearer token"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// countError answers err outside any route and counts it under route.
func (s *Server) countError(w http.ResponseWriter, r *http.Request, route string, err error) {
	e := writeError(w, err)
	s.metrics.requests.WithLabelValues(route, strconv.Itoa(e.status)).Inc()
}

// statusWriter records the status code written.
type statusWriter struct {
	http.ResponseWriter
	status     int
	metricCode string // counted instead of status when set (a client fault no answer reaches)
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap turns a route's handler into an http.Handler: a body size limit,
// errors answered as JSON, panics answered 500, and metrics.
func (s *Server) wrap(rt Route) http.Handler {
	label := rt.Path
	if rt.Method != "" {
		label = rt.Pattern()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "route", label, "panic", v)
				if sw.status == 0 {
					writeError(sw, errorf(http.StatusInternalServerError, wire.CodeInternal, "internal error"))
				}
			}
			code := strconv.Itoa(sw.status)
			if sw.metricCode != "" {
				code = sw.metricCode
			}
			s.metrics.requests.WithLabelValues(label, code).Inc()
			s.metrics.duration.WithLabelValues(label).Observe(time.Since(start).Seconds())
		}()
		r.Body = &bodyReader{ReadCloser: http.MaxBytesReader(sw, r.Body, s.cfg.MaxBodyBytes), atEOF: func() { endBody(sw) }}
		if err := rt.handle(sw, r); err != nil {
			e := writeError(sw, err)
			level := slog.LevelDebug
			if e.status >= 500 {
				level = slog.LevelWarn
			}
			attrs := []any{"route", label, "status", e.status, "code", e.Code, "err", e.Message}
			if e.detail != "" {
				attrs = append(attrs, "ref", e.Ref, "cause", e.detail)
			}
			s.log.Log(r.Context(), level, "request failed", attrs...)
			if code := e.metricCode; code != "" {
				sw.status, sw.metricCode = 0, code
			}
		}
	})
}

// bodyReader marks the errors of reading a request's body that are the
// client's doing: the body ended before its length (the client went away,
// or stopped sending until the read deadline). Handlers return them as
// they come; classify answers them 4xx, and they are counted under their
// own metric code, not as server errors.
type bodyReader struct {
	io.ReadCloser
	atEOF func() // once the whole body is read
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	switch {
	case err == io.EOF:
		if b.atEOF != nil {
			b.atEOF()
			b.atEOF = nil
		}
	case err != nil && !errors.As(err, &mbe):
		err = &clientBodyError{err: err}
	}
	return n, err
}

// clientBodyError: reading the request body failed on the client's side.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "request body cut short: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// healthz answers 200 while the server takes requests.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) error {
	if s.sys.Pool().Closed() {
		return fmt.Errorf("healthz: %w", system.ErrShuttingDown)
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// metricsHandler serves the Prometheus text format.
func (s *Server) metricsHandler() func(http.ResponseWriter, *http.Request) error {
	h := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	return func(w http.ResponseWriter, r *http.Request) error {
		h.ServeHTTP(w, r)
		return nil
	}
}

// configured checks a pchannel named by a data route: a valid name (else
// 400 invalid_name) of the configured set (else 404 unknown_pchannel),
// before anything is read or written, so a typo never makes a pchannel.
func (s *Server) configured(p string) error {
	if err := validName("pchannel", p); err != nil {
		return err
	}
	if !slices.Contains(s.sc.PChannels, p) {
		return errorf(http.StatusNotFound, wire.CodeUnknownPChannel, "pchannel %q is not one of the configured pchannels (%s)", p, strings.Join(s.sc.PChannels, ", "))
	}
	return nil
}

// mustKnow fails with 404 unless pchannel was ever written.
func (s *Server) mustKnow(ctx context.Context, pchannel string) error {
	ok, err := s.sys.Written(ctx, pchannel)
	if err != nil {
		return err
	}
	if !ok {
		return errorf(http.StatusNotFound, wire.CodeUnknownPChannel, "pchannel %q has never been written", pchannel)
	}
	return nil
}
