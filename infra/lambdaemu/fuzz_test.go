package lambdaemu

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzReadPrelude: a runtime's streamed answer is untrusted input; the
// prelude decoder never panics and either finds the eight NULs after a
// JSON object or refuses.
func FuzzReadPrelude(f *testing.F) {
	f.Add([]byte(`{"statusCode":200,"headers":{"A":"b"}}` + strings.Repeat("\x00", 8) + "body"))
	f.Add([]byte(`{"statusCode":200}` + strings.Repeat("\x00", 7)))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := readPrelude(bufio.NewReader(bytes.NewReader(b)))
		if err == nil && bytes.Count(b, []byte{0}) < 8 {
			t.Fatalf("accepted a prelude without its eight NULs: %q", b)
		}
	})
}

// FuzzParseAuthorization: the Authorization header is client input.
func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKID/20261207/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc")
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, h string) {
		cred, signed, sig, err := parseAuthorization(h)
		if err != nil && !errors.Is(err, ErrAuth) {
			t.Fatalf("error %v does not wrap ErrAuth", err)
		}
		if err == nil && (cred == "" || len(signed) == 0 || sig == "") {
			t.Fatalf("accepted %q with a part missing", h)
		}
	})
}

func TestIsText(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"text/plain":                        true,
		"application/vnd.api+json":          true,
		"application/x-www-form-urlencoded": true,
		"application/octet-stream":          false,
		"application/x-cairn-batch":         false,
		"image/png":                         false,
		"":                                  false,
	} {
		if got := isText(ct); got != want {
			t.Errorf("isText(%q) = %v, want %v", ct, got, want)
		}
	}
}
