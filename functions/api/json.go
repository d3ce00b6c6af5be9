package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"unicode/utf8"

	"github.com/cairnlog/cairn/functions/api/wire"
)

// readJSON decodes the JSON body of r into v as strictly as an append body:
// valid UTF-8, no unknown fields, nothing after the object. An empty body
// is allowed only when optional, and leaves v as it is. Failures are 400
// (or 413 past Config.MaxBodyBytes, 415 for another Content-Type).
func readJSON(r *http.Request, v any, optional bool) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err // *http.MaxBytesError: 413
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return errorf(http.StatusBadRequest, wire.CodeMalformed, "%s %s needs a JSON body", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != wire.ContentTypeJSON {
			return errorf(http.StatusUnsupportedMediaType, wire.CodeUnsupportedType, "Content-Type %q: want %s", ct, wire.ContentTypeJSON)
		}
	}
	return decodeStrict(body, v, "body")
}

// decodeStrict decodes body into v: valid UTF-8 (encoding/json would turn
// invalid UTF-8 into U+FFFD silently), no unknown fields, nothing after
// the value. what names the body in the messages of its 400s.
func decodeStrict(body []byte, v any, what string) error {
	if !utf8.Valid(body) {
		return errorf(http.StatusBadRequest, wire.CodeMalformed, "body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, wire.CodeMalformed, "%s: %v", what, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, wire.CodeMalformed, "%s: data after the JSON object", what)
	}
	return nil
}

// onlyQuery refuses query parameters other than allowed, then any given
// more than once.
func onlyQuery(q url.Values, allowed ...string) error {
	for k := range q {
		if !slices.Contains(allowed, k) {
			return errorf(http.StatusBadRequest, wire.CodeMalformed, "unknown query parameter %q", k)
		}
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return errorf(http.StatusBadRequest, wire.CodeMalformed, "%s given more than once", k)
		}
	}
	return nil
}

// handler is a route's handler: it answers through w, or returns the
// error that Server.wrap answers.
type handler = func(http.ResponseWriter, *http.Request) error

// answer adapts h, which returns its answer, to a route's handler: 200
// with the answer as JSON.
func answer[Out any](h func(*http.Request) (Out, error)) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		out, err := h(r)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// pathName opens a route on one named thing: the path's {param} checked as
// a name of kind (400 invalid_name), then no query parameters (400
// malformed).
func pathName(r *http.Request, param, kind string) (string, error) {
	name := r.PathValue(param)
	if err := validName(kind, name); err != nil {
		return "", err
	}
	if err := noQuery(r); err != nil {
		return "", err
	}
	return name, nil
}

// describe is a route that answers one named thing: pathName, then get,
// shown by out.
func describe[T, Out any](param, kind string, get func(context.Context, string) (T, error), out func(T) Out) handler {
	return answer(func(r *http.Request) (Out, error) {
		var zero Out
		name, err := pathName(r, param, kind)
		if err != nil {
			return zero, err
		}
		v, err := get(r.Context(), name)
		if err != nil {
			return zero, err
		}
		return out(v), nil
	})
}

// jsonBody opens a route that takes a JSON body after whatever its path
// names: no query parameters, then the body decoded into an In (readJSON;
// optional: an empty body leaves In's zero value).
func jsonBody[In any](r *http.Request, optional bool) (In, error) {
	var in In
	if err := noQuery(r); err != nil {
		return in, err
	}
	err := readJSON(r, &in, optional)
	return in, err
}

// noQuery refuses query parameters on routes that take none.
func noQuery(r *http.Request) error {
	if r.URL.RawQuery != "" {
		return errorf(http.StatusBadRequest, wire.CodeMalformed, "%s takes no query parameters", r.URL.Path)
	}
	return nil
}

// asIs is describe's out for a get that returns the answer itself.
func asIs[T any](v T) T { return v }

// mapped is f of every element of in, never nil: a JSON list, [] when empty.
func mapped[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
