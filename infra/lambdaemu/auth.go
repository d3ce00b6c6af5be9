package lambdaemu

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// IAMAuth makes the Function URL an AWS_IAM one: every request must be
// signed with Signature Version 4 for service "lambda" in Region by one of
// Credentials. The emulator checks a signature by signing the request
// again with aws-sdk-go-v2's signer, over the headers the client says it
// signed, and comparing; a refused request gets 403 {"Message":"Forbidden"}.
// Headers that signer never signs (User-Agent, X-Amzn-Trace-Id, ...) make
// a signature that names them fail.
type IAMAuth struct {
	Region      string            // the signing region; required
	Credentials map[string]string // access key ID → secret access key; at least one
	MaxSkew     time.Duration     // how far X-Amz-Date may be from now; default 5 min
}

// ErrAuth is wrapped by every refused signature.
var ErrAuth = errors.New("lambdaemu: bad signature")

func (a *IAMAuth) validate() error {
	if a.Region == "" || len(a.Credentials) == 0 {
		return fmt.Errorf("%w: IAMAuth needs a Region and Credentials", ErrConfig)
	}
	return nil
}

// Verify checks r's signature over body (r's own Body is not read), as
// the Function URL does; the error wraps ErrAuth. It is exported for other
// test kits that check signatures (client/sigv4/sigv4test).
func (a *IAMAuth) Verify(r *http.Request, body []byte) error {
	_, err := a.verify(r, body)
	return err
}

// verify checks r's signature over body and returns the caller.
func (a *IAMAuth) verify(r *http.Request, body []byte) (*events.LambdaFunctionURLRequestContextAuthorizerIAMDescription, error) {
	cred, signed, sig, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return nil, err
	}
	scope := strings.Split(cred, "/") // AKID/date/region/service/aws4_request
	if len(scope) != 5 || scope[2] != a.Region || scope[3] != "lambda" || scope[4] != "aws4_request" {
		return nil, fmt.Errorf("%w: credential scope %q", ErrAuth, cred)
	}
	secret, ok := a.Credentials[scope[0]]
	if !ok {
		return nil, fmt.Errorf("%w: unknown access key %s", ErrAuth, scope[0])
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	skew := a.MaxSkew
	if skew == 0 {
		skew = 5 * time.Minute
	}
	if err != nil || time.Since(at).Abs() > skew {
		return nil, fmt.Errorf("%w: X-Amz-Date %q", ErrAuth, r.Header.Get("X-Amz-Date"))
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payloadHash {
		// The hash signed is not the body's: the body was changed.
		return nil, fmt.Errorf("%w: X-Amz-Content-Sha256 %s, the body hashes to %s", ErrAuth, h, payloadHash)
	}
	// The request again, with only the headers the client signed.
	again, err := http.NewRequestWithContext(context.Background(), r.Method, "https://"+r.Host+r.URL.EscapedPath(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAuth, err)
	}
	again.URL.RawQuery = r.URL.RawQuery
	again.Host = r.Host
	again.ContentLength = r.ContentLength
	for _, h := range signed {
		if h != "host" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	creds := aws.Credentials{AccessKeyID: scope[0], SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, payloadHash, "lambda", a.Region, at); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAuth, err)
	}
	_, signedAgain, sigAgain, err := parseAuthorization(again.Header.Get("Authorization"))
	if err != nil || !slices.Equal(signed, signedAgain) || !hmac.Equal([]byte(sig), []byte(sigAgain)) {
		return nil, fmt.Errorf("%w: signature does not match", ErrAuth)
	}
	return &events.LambdaFunctionURLRequestContextAuthorizerIAMDescription{
		AccessKey: scope[0], AccountID: AccountID, CallerID: "AIDA" + scope[0],
		UserARN: "arn:aws:iam::" + AccountID + ":user/" + scope[0], UserID: "AIDA" + scope[0],
	}, nil
}

// parseAuthorization splits "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
// Signature=...".
func parseAuthorization(h string) (cred string, signed []string, sig string, err error) {
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		return "", nil, "", fmt.Errorf("%w: no AWS4-HMAC-SHA256 Authorization header", ErrAuth)
	}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = strings.Split(v, ";")
		case "Signature":
			sig = v
		}
	}
	if cred == "" || len(signed) == 0 || sig == "" {
		return "", nil, "", fmt.Errorf("%w: incomplete Authorization header", ErrAuth)
	}
	return cred, signed, sig, nil
}
