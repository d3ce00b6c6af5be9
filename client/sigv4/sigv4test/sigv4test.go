// Package sigv4test checks SigV4 signatures of Lambda Function URL
// requests in tests, as a Function URL with AuthType AWS_IAM would, with
// the Lambda emulator's check (infra/lambdaemu): it signs the request again
// with aws-sdk-go-v2's signer, the same credentials and the request's own
// X-Amz-Date, and compares the signatures. It knows one set of static credentials; it does
// not check IAM policies.
package sigv4test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/cairnlog/cairn/infra/lambdaemu"
)

// ErrBadSignature: a request is unsigned or its signature does not match.
var ErrBadSignature = errors.New("sigv4test: bad signature")

// Verify checks r's signature for service "lambda" in region, under
// creds, with the Lambda emulator's own check (infra/lambdaemu: IAMAuth),
// so that the SDK's tests and the emulated stack accept the same requests.
// It reads the body and leaves a copy in r.Body.
func Verify(r *http.Request, creds aws.Credentials, region string) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	// Any X-Amz-Date: the SDK's tests sign at fixed times.
	auth := lambdaemu.IAMAuth{Region: region, Credentials: map[string]string{creds.AccessKeyID: creds.SecretAccessKey}, MaxSkew: math.MaxInt64}
	if err := auth.Verify(r, body); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
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
