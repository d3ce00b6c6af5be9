// Package sigv4test checks SigV4 signatures of Lambda Function URL
// requests in tests, as a Function URL with AuthType AWS_IAM would: it
// signs the request again with aws-sdk-go-v2's signer, the same
// credentials and the request's own X-Amz-Date, and compares the
// Authorization headers. It knows one set of static credentials; it does
// not check IAM policies.
package sigv4test

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// ErrBadSignature: a request is unsigned or its signature does not match.
var ErrBadSignature = errors.New("sigv4test: bad signature")

// Verify checks r's signature for service "lambda" in region, under
// creds. It reads the body and leaves a copy in r.Body.
func Verify(r *http.Request, creds aws.Credentials, region string) error {
	auth := r.Header.Get("Authorization")
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, algo) {
		return fmt.Errorf("%w: Authorization %q is not SigV4", ErrBadSignature, auth)
	}
	var signed []string
	for _, part := range strings.Split(strings.TrimPrefix(auth, algo), ", ") {
		if v, ok := strings.CutPrefix(part, "SignedHeaders="); ok {
			signed = strings.Split(v, ";")
		}
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("%w: X-Amz-Date: %w", ErrBadSignature, err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if got := r.Header.Get("X-Amz-Content-Sha256"); got != "" && got != hash {
		return fmt.Errorf("%w: X-Amz-Content-Sha256 %s, body hashes to %s", ErrBadSignature, got, hash)
	}
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	again, err := http.NewRequest(r.Method, u.String(), nil)
	if err != nil {
		return err
	}
	again.ContentLength = int64(len(body))
	for _, h := range signed {
		if h != "host" && h != "content-length" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, again, hash, "lambda", region, at); err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(again.Header.Get("Authorization")), []byte(auth)) != 1 {
		return fmt.Errorf("%w: the signature does not match", ErrBadSignature)
	}
	return nil
}

// Handler serves h behind Verify, answering 403 with a JSON body to a
// request whose signature fails, as a Function URL does.
func Handler(h http.Handler, creds aws.Credentials, region string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := Verify(r, creds, region); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(map[string]string{"code": "forbidden", "message": err.Error()})
			return
		}
		h.ServeHTTP(w, r)
	})
}
