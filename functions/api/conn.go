package api

import (
	"log"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// HTTPServer is an http.Server for h with the connection timeouts of the
// Config (HeaderTimeout, WriteTimeout, IdleTimeout); the body timeout is
// set per request by the handler, from the end of the headers to the end
// of the body, so that it never cuts a long poll. Serve it on Listener's
// listener. errorLog takes net/http's own complaints (nil: the log
// package's default).
func (s *Server) HTTPServer(h http.Handler, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: max(s.cfg.HeaderTimeout, 0),
		WriteTimeout:      max(s.cfg.WriteTimeout, 0),
		IdleTimeout:       max(s.cfg.IdleTimeout, 0),
		ErrorLog:          errorLog,
	}
}

// Listener caps ln at Config.MaxConns open connections: more wait in the
// listen backlog until one closes (golang.org/x/net/netutil).
func (s *Server) Listener(ln net.Listener) net.Listener {
	return netutil.LimitListener(ln, s.cfg.MaxConns)
}

// startBody gives a request with a body Config.BodyTimeout to send it,
// and its answer WriteTimeout after that. A writer that cannot set
// deadlines (a Lambda function's) is left alone.
func (s *Server) startBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 || s.cfg.BodyTimeout <= 0 {
		return
	}
	rc := http.NewResponseController(w)
	end := time.Now().Add(s.cfg.BodyTimeout)
	_ = rc.SetReadDeadline(end)
	if s.cfg.WriteTimeout > 0 {
		_ = rc.SetWriteDeadline(end.Add(s.cfg.WriteTimeout))
	}
}

// endBody lifts the body deadline once the body is read: net/http reads on
// in the background to notice a client hanging up, and a deadline passing
// there would cancel a long poll's context.
func endBody(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
}

// extendWrite gives the answer of a request that waits up to wait (a long
// poll) that much more time than Config.WriteTimeout.
func (s *Server) extendWrite(w http.ResponseWriter, wait time.Duration) {
	if s.cfg.WriteTimeout > 0 && wait > 0 {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + s.cfg.WriteTimeout))
	}
}
