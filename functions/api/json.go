package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
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
	if !utf8.Valid(body) {
		return errorf(http.StatusBadRequest, wire.CodeMalformed, "body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, wire.CodeMalformed, "body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, wire.CodeMalformed, "body: data after the JSON object")
	}
	return nil
}

// onlyQuery refuses query parameters other than allowed, and any given
// more than once.
func onlyQuery(r *http.Request, allowed ...string) error {
	for k, vs := range r.URL.Query() {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return errorf(http.StatusBadRequest, wire.CodeMalformed, "unknown query parameter %q", k)
		}
		if len(vs) != 1 {
			return errorf(http.StatusBadRequest, wire.CodeMalformed, "%s given more than once", k)
		}
	}
	return nil
}
