package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cairnlog/cairn/infra/backoff"
)

// Client talks to one Cairn server (cairn serve, or a Lambda Function URL
// behind a proxy that adds its auth) over the HTTP API. It is safe for
// concurrent use; build one per server and share it.
type Client struct {
	base  *url.URL          // scheme, host and an optional path prefix, no trailing slash
	bases *[nRoles]*url.URL // the function of each role (NewEndpoints), or nil: base serves all
	sign  func(*http.Request) error
	token string
	hc    *http.Client
	log   *slog.Logger
	retry RetryPolicy

	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error // tests record the waits

	bodies bodyPool // binary append bodies, reused (sharedBody says when)
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends "Authorization: Bearer <token>" on every request (cairn
// serve --token). Default: no Authorization header.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient sends requests through hc, e.g. with a transport that
// signs requests or goes through a proxy. Its Timeout, if any, must exceed
// the longest read wait. Default: a client of its own with a clone of
// http.DefaultTransport and up to 64 idle connections per host.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithLogger logs retries (at Debug) and a producer stopping (at Warn).
// Default: nothing is logged.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithRetry sets the retry policy of every call. Default: the zero
// RetryPolicy, whose fields take their documented defaults.
func WithRetry(p RetryPolicy) Option { return func(c *Client) { c.retry = p } }

// New returns a client of the server at baseURL ("http://127.0.0.1:7070";
// a path prefix is kept: "https://gw.example/cairn"). It sends no request.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := parseBase(baseURL)
	if err != nil {
		return nil, err
	}
	c := &Client{base: u, now: time.Now, sleep: func(ctx context.Context, d time.Duration) error {
		if backoff.Sleep(ctx, d) != nil {
			return context.Cause(ctx) // the caller's reason, as every error of the package says it
		}
		return nil
	}}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		c.hc = &http.Client{Transport: t}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.retry = c.retry.withDefaults()
	if err := c.retry.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// BaseURL is the server URL the client talks to (with NewEndpoints, the
// node's).
func (c *Client) BaseURL() string { return c.base.String() }

// request is one API call.
type request struct {
	method string
	path   string // "/v1/...", path elements already escaped
	query  url.Values
	body   []byte // JSON (or of contentType), or nil
	// shared, if set, holds body (a pooled buffer): each attempt reads it
	// through a reader of its own, so that the buffer is reused only once
	// every attempt is done with it.
	shared *sharedBody
	// contentType is the body's media type; "" is JSON.
	contentType string
	// prefer is the Prefer header (RFC 7240), if any.
	prefer string
	wait   time.Duration // a read's long poll, added to the attempt timeout
	// write: the request changes the log (an append), so a failure after
	// it may have reached the server leaves its outcome unknown.
	write bool
	// idempotent: repeating the request cannot change what it does (reads,
	// sync, appends whose every message has an idempotency key and that
	// have no expected offset), so every retryable failure is retried;
	// otherwise only failures that prove the request had no effect are.
	idempotent bool
}

// do runs req under the retry policy and decodes a 2xx JSON answer into
// out. Its errors are an *Error (the server's final answer), one wrapping
// ErrUnavailable or ErrOutcomeUnknown when retries ran out or were unsafe,
// or one wrapping the context's error.
func (c *Client) do(ctx context.Context, req request, out any) error {
	unsure := false // an attempt of a write may have landed
	var last error
	pauses := c.retry.pauses()
	attempt := 1
	for ; ; attempt++ {
		if ctx.Err() != nil {
			return c.gaveUp(ctx, req, unsure)
		}
		err := c.attempt(ctx, req, out)
		if err == nil {
			return nil
		}
		retry, landed, delay := classifyAttempt(err)
		unsure = unsure || (req.write && landed)
		switch {
		case ctx.Err() != nil:
			return c.gaveUp(ctx, req, unsure)
		case !retry:
			if unsure && !landed {
				// A final answer now does not undo an earlier attempt.
				return fmt.Errorf("%w: an earlier attempt may have landed: %w", ErrOutcomeUnknown, err)
			}
			return err
		case landed && !req.idempotent:
			if req.write {
				return fmt.Errorf("%w (not retried: no idempotency keys, or an expected offset): %w", ErrOutcomeUnknown, err)
			}
			return err
		}
		last = err
		if c.retry.MaxAttempts > 0 && attempt >= c.retry.MaxAttempts {
			break
		}
		delay = max(delay, pauses.Next())
		c.log.DebugContext(ctx, "cairn: retrying", "method", req.method, "path", req.path,
			"attempt", attempt, "delay", delay, "err", err)
		_ = c.sleep(ctx, delay) // a cancelled ctx is reported at the top of the loop
	}
	if unsure {
		return fmt.Errorf("%w after %d attempts: %w", ErrOutcomeUnknown, attempt, last)
	}
	return fmt.Errorf("%w after %d attempts: %w", ErrUnavailable, attempt, last)
}

// gaveUp is the error of a call whose context ended.
func (c *Client) gaveUp(ctx context.Context, req request, unsure bool) error {
	if unsure {
		return fmt.Errorf("%s %s: %w: %w", req.method, req.path, ErrOutcomeUnknown, context.Cause(ctx))
	}
	return fmt.Errorf("%s %s: %w", req.method, req.path, context.Cause(ctx))
}

// classifyAttempt says whether a failed attempt is worth another, whether
// it may have had an effect on the server, and the least delay the server
// asked for.
func classifyAttempt(err error) (retry, landed bool, delay time.Duration) {
	var ae *Error
	switch {
	case errors.As(err, &ae):
		return ae.retryable(), ae.mayHaveLanded(), ae.RetryAfter
	case errors.Is(err, errNotSent):
		return true, false, 0
	case errors.Is(err, ErrUnauthorized):
		return false, false, 0 // not signed, so not sent
	case errors.Is(err, errBadAnswer):
		return false, true, 0 // a 2xx we cannot read: it landed
	}
	return true, true, 0 // a transport failure or timeout after sending
}

// errNotSent marks a transport failure that proves the request never
// reached the server; errBadAnswer a 2xx answer that does not decode.
var (
	errNotSent   = errors.New("request not sent")
	errBadAnswer = errors.New("undecodable answer")
)

// attempt sends req once. A transport failure is returned as is (wrapping
// errNotSent when the connection could not even be made); an answer
// outside 2xx as an *Error.
func (c *Client) attempt(ctx context.Context, req request, out any) (err error) {
	ctx, cancel := context.WithTimeout(ctx, c.retry.AttemptTimeout+req.wait)
	defer cancel()
	base := c.baseFor(req.path)
	u := *base
	u.RawPath = base.EscapedPath() + req.path
	if u.Path, err = url.PathUnescape(u.RawPath); err != nil {
		return fmt.Errorf("%w: path %q: %w", ErrInvalid, u.RawPath, err)
	}
	if len(req.query) > 0 {
		u.RawQuery = req.query.Encode()
	}
	var body io.Reader
	switch {
	case req.shared != nil:
		body = req.shared.open()
	case req.body != nil:
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u.String(), body)
	if err != nil {
		if rc, ok := body.(io.Closer); ok {
			rc.Close()
		}
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if req.shared != nil {
		// Set for the known reader types only (bytes.Reader...): without
		// them the body would go chunked, and a redirect or a retry on a
		// fresh connection could not send it again.
		hr.ContentLength = int64(len(req.body))
		hr.GetBody = func() (io.ReadCloser, error) { return req.shared.open(), nil }
	}
	if req.body != nil {
		ct := req.contentType
		if ct == "" {
			ct = "application/json"
		}
		hr.Header.Set("Content-Type", ct)
	}
	hr.Header.Set("Accept", "application/json")
	if req.prefer != "" {
		hr.Header.Set("Prefer", req.prefer)
	}
	hr.Header.Set("User-Agent", "cairn-go-client")
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.sign != nil {
		if err := c.sign(hr); err != nil {
			if hr.Body != nil {
				hr.Body.Close() // never sent: no transport closes it
			}
			return fmt.Errorf("%s %s: sign: %w: %w", req.method, req.path, ErrUnauthorized, err)
		}
	}
	res, err := c.hc.Do(hr)
	if err != nil {
		if isDialError(err) {
			return fmt.Errorf("%w: %w", errNotSent, err)
		}
		return err
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return c.answerError(req, res)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err // a lost reply: the request may have been served
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: %w: %w: %w", req.method, req.path, ErrInternal, errBadAnswer, err)
	}
	return nil
}

// answerError reads an error answer into an *Error.
func (c *Client) answerError(req request, res *http.Response) *Error {
	e := &Error{Method: req.method, Path: req.path, Status: res.StatusCode,
		RetryAfter: parseRetryAfter(res.Header.Get("Retry-After"), c.now())}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var body struct{ Code, Message, Ref, Earliest string }
	if json.Unmarshal(b, &body) == nil && body.Code != "" {
		e.Code, e.Message, e.Ref, e.Earliest = body.Code, body.Message, body.Ref, body.Earliest
	} else {
		e.Code = "http_" + strconv.Itoa(res.StatusCode)
		e.Message = strings.TrimSpace(string(b))
	}
	if e.Message == "" { // a JSON answer without one, or an empty body
		e.Message = http.StatusText(res.StatusCode)
	}
	if e.Message == "" {
		e.Message = "HTTP " + strconv.Itoa(res.StatusCode)
	}
	if v := res.Header.Get("Cairn-Next-Offset"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			e.NextOffset, e.HasNextOffset = n, true
		}
	}
	return e
}

// pchannelPath is "/v1/pchannels/{p}" + suffix, with p escaped. An empty
// name is refused here: it would name another route.
func pchannelPath(p, suffix string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("client: %w: empty pchannel name", ErrInvalid)
	}
	return "/v1/pchannels/" + url.PathEscape(p) + suffix, nil
}

// namePath is prefix + "/" + name + suffix, with name escaped as one path
// element; what names the kind of name for the error of an empty one.
func namePath(what, prefix, name, suffix string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("client: %w: empty %s name", ErrInvalid, what)
	}
	return prefix + "/" + url.PathEscape(name) + suffix, nil
}

// vchannelPath is "/v1/vchannels/{v}" + suffix, with v escaped.
func vchannelPath(v, suffix string) (string, error) {
	return namePath("vchannel", "/v1/vchannels", v, suffix)
}

// isDialError reports a failure to connect: the request was never sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
