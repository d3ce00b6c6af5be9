package lambdaemu

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// MaxRequestBytes is the largest request body a Function URL takes
// (Lambda's 6 MB synchronous invocation payload limit).
const MaxRequestBytes = 6 << 20

// URLID is the emulated Function URL's ID, the first label of its domain.
const URLID = "lambdaemu0000000000000000000000"

// The Function URL's answers when the function itself cannot answer.
// Lambda documents the statuses; the bodies are what Function URLs are
// observed to send.
const (
	bodyThrottled = `{"Message":"Rate Exceeded."}`
	bodyError     = `{"Message":"Internal Server Error"}`
	bodyForbidden = `{"Message":"Forbidden"}`
	bodyTooLarge  = `{"Message":"Request must be smaller than 6291456 bytes for the InvokeFunction operation"}`
)

func (f *Function) domain() string { return URLID + ".lambda-url." + f.cfg.Region + ".on.aws" }

// ServeHTTP is the Function URL: it turns r into a Function URL event
// (payload format 2.0), invokes the function with it and maps the answer
// back to HTTP. Safe for concurrent use.
func (f *Function) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeMessage(w, http.StatusRequestEntityTooLarge, bodyTooLarge)
		return
	case err != nil:
		return // the client went away
	}
	var caller *events.LambdaFunctionURLRequestContextAuthorizerIAMDescription
	if f.cfg.Auth != nil {
		if caller, err = f.cfg.Auth.verify(r, body); err != nil {
			writeMessage(w, http.StatusForbidden, bodyForbidden)
			return
		}
	}
	id := newRequestID()
	w.Header().Set("X-Amzn-Requestid", id)
	inv := newInvocation(id, f.event(r, body, id, caller))
	if err := f.route(inv); err != nil {
		if errors.Is(err, ErrThrottled) {
			writeMessage(w, http.StatusTooManyRequests, bodyThrottled)
		} else {
			writeMessage(w, http.StatusBadGateway, bodyError)
		}
		return
	}
	o, err := inv.wait(r.Context())
	if err != nil {
		return // the client went away; the invocation runs on
	}
	if o.err != nil {
		writeMessage(w, http.StatusBadGateway, bodyError)
		return
	}
	w.Header().Set("X-Lambdaemu-Env", itoa(o.envID))
	if o.resp.contentType == contentTypeStreaming {
		writeStreamed(w, o.resp)
	} else {
		writeBuffered(w, o.resp)
	}
}

func writeMessage(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// event is the Function URL event for r.
func (f *Function) event(r *http.Request, body []byte, id string, caller *events.LambdaFunctionURLRequestContextAuthorizerIAMDescription) []byte {
	now := time.Now()
	sourceIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	headers := map[string]string{}
	var cookies []string
	for k, vs := range r.Header {
		k = strings.ToLower(k)
		if k == "cookie" {
			for _, v := range vs {
				for c := range strings.SplitSeq(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[k] = strings.Join(vs, ",")
	}
	headers["host"] = f.domain()
	headers["x-amzn-trace-id"] = strings.TrimSuffix(traceID, ";Sampled=0")
	headers["x-forwarded-for"] = sourceIP
	headers["x-forwarded-proto"] = "https"
	headers["x-forwarded-port"] = "443"
	var query map[string]string
	if vals, err := url.ParseQuery(r.URL.RawQuery); err == nil && len(vals) > 0 {
		query = map[string]string{}
		for k, vs := range vals {
			query[k] = strings.Join(vs, ",")
		}
	}
	ev := events.LambdaFunctionURLRequest{
		Version:               "2.0",
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		RequestContext: events.LambdaFunctionURLRequestContext{
			AccountID:    AccountID,
			RequestID:    id,
			APIID:        URLID,
			DomainName:   f.domain(),
			DomainPrefix: URLID,
			Time:         now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto, SourceIP: sourceIP, UserAgent: r.UserAgent(),
			},
		},
	}
	if caller != nil {
		ev.RequestContext.Authorizer = &events.LambdaFunctionURLRequestContextAuthorizerDescription{IAM: caller}
	}
	if len(body) > 0 {
		if isText(r.Header.Get("Content-Type")) && utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	if f.cfg.Hooks.Event != nil {
		f.cfg.Hooks.Event(&ev)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err) // strings and maps of strings always marshal
	}
	return b
}

// isText reports whether a Function URL passes a body of this content type
// as text; any other body travels base64-encoded.
func isText(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	if strings.HasPrefix(mt, "text/") {
		return true
	}
	switch mt {
	case "application/json", "application/xml", "application/javascript", "application/x-www-form-urlencoded", "application/yaml":
		return true
	}
	return strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml")
}
