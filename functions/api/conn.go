package api

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/netutil"

	"github.com/cairnlog/cairn/functions/api/wire"
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
// listen backlog until one closes (golang.org/x/net/netutil). The answers
// net/http writes by itself, before any handler (a header too large, a
// request it cannot parse), come as the API's JSON errors too.
func (s *Server) Listener(ln net.Listener) net.Listener {
	return jsonErrorListener{Listener: netutil.LimitListener(ln, s.cfg.MaxConns), count: func(status int) {
		s.metrics.requests.WithLabelValues("unparsed", strconv.Itoa(status)).Inc()
	}}
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

// jsonErrorListener rewrites the plain-text answers that net/http writes
// by itself, before any handler runs (431 for headers over MaxHeaderBytes,
// 400 for a request it cannot parse or one without Host, 501 for an
// unknown transfer encoding), into the API's JSON error body, and counts
// them under the route "unparsed".
type jsonErrorListener struct {
	net.Listener
	count func(status int)
}

func (l jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{Conn: c, count: l.count}, nil
}

type jsonErrorConn struct {
	net.Conn
	count func(status int)
}

// netHTTPError is the whole of such an answer, written in one Write: the
// status line, these two headers only (a handler's answer has a Date),
// and the text.
var netHTTPError = regexp.MustCompile(`\AHTTP/1\.1 ([0-9]{3}) ([^\r\n]*)\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n([^\r\n]*)\z`)

func (c *jsonErrorConn) Write(b []byte) (int, error) {
	m := netHTTPError.FindSubmatch(b)
	if m == nil {
		return c.Conn.Write(b)
	}
	status, _ := strconv.Atoi(string(m[1]))
	code := wire.CodeMalformed
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		code = wire.CodeHeadersTooLarge
	case http.StatusNotImplemented:
		code = wire.CodeNotImplemented
	}
	msg := strings.TrimPrefix(string(m[3]), string(m[1])+" ")
	body, _ := json.Marshal(Error{Code: code, Message: msg})
	body = append(body, '\n')
	c.count(status)
	if _, err := fmt.Fprintf(c.Conn, "HTTP/1.1 %s %s\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		m[1], m[2], len(body), body); err != nil {
		return 0, err
	}
	return len(b), nil
}

// CloseWrite half-closes, as net/http does before closing after such an
// answer, if the connection can.
func (c *jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
