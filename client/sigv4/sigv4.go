package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/cairnlog/cairn/client"
)

// Service is the signing name of Lambda Function URLs.
const Service = "lambda"

// EmptyHash is the hex SHA-256 of an empty body.
const EmptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// ErrNoRegion: a request's host names no region and the configuration has
// none either.
var ErrNoRegion = errors.New("sigv4: no region: the URL names none (not a Function URL) and none is configured")

// Signer signs requests with one credential provider. Safe for concurrent
// use.
type Signer struct {
	creds  aws.CredentialsProvider
	region string // when the host names none
	signer *v4.Signer
	now    func() time.Time
}

// New returns a Signer with cfg's credentials (wrapped in an
// aws.CredentialsCache unless they already are) and cfg.Region as the
// region of hosts that name none.
func New(cfg aws.Config) *Signer {
	creds := cfg.Credentials
	if _, cached := creds.(*aws.CredentialsCache); !cached && creds != nil {
		creds = aws.NewCredentialsCache(creds)
	}
	return &Signer{creds: creds, region: cfg.Region, signer: v4.NewSigner(), now: time.Now}
}

// Load builds a Signer from the default credential chain
// (config.LoadDefaultConfig) with the named shared-config profile and
// region, each left to the chain's defaults ($AWS_PROFILE, $AWS_REGION,
// the profile's region) when empty. It only reads configuration: the
// credentials are fetched when the first request is signed.
func Load(ctx context.Context, profile, region string) (*Signer, error) {
	cfg, err := LoadConfig(ctx, profile, region)
	if err != nil {
		return nil, err
	}
	return New(cfg), nil
}

// LoadConfig is the AWS configuration Load uses, for other AWS clients of
// the same caller (cairn --stack reads the stack's outputs with it).
func LoadConfig(ctx context.Context, profile, region string) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(profile))
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("sigv4: AWS configuration: %w", err)
	}
	return cfg, nil
}

// Option signs every request of a client (each attempt anew).
func (s *Signer) Option() client.Option { return client.WithRequestSigner(s.Sign) }

// RegionOf is the region a Lambda Function URL's host names
// ("abc.lambda-url.eu-west-1.on.aws" → "eu-west-1"), or "".
func RegionOf(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	_, rest, ok := strings.Cut(host, ".lambda-url.")
	if !ok {
		return ""
	}
	region, suffix, ok := strings.Cut(rest, ".")
	if !ok || !strings.HasPrefix(suffix, "on.aws") || region == "" {
		return ""
	}
	return region
}

// Sign signs r in place: X-Amz-Date, X-Amz-Content-Sha256, the session
// token if any, and Authorization (replacing one already set). The body
// is hashed through r.GetBody when set; otherwise it is read into memory
// and r.Body replaced by a copy (with GetBody and ContentLength set).
func (s *Signer) Sign(r *http.Request) error {
	region := RegionOf(r.URL.Host)
	if region == "" {
		region = s.region
	}
	if region == "" {
		return ErrNoRegion
	}
	if s.creds == nil {
		return errors.New("sigv4: no credentials provider")
	}
	hash, err := payloadHash(r)
	if err != nil {
		return fmt.Errorf("sigv4: hash the body: %w", err)
	}
	creds, err := s.creds.Retrieve(r.Context())
	if err != nil {
		return fmt.Errorf("sigv4: credentials: %w", err)
	}
	r.Header.Del("Authorization")
	r.Header.Set("X-Amz-Content-Sha256", hash)
	if err := s.signer.SignHTTP(r.Context(), creds, r, hash, Service, region, s.now()); err != nil {
		return fmt.Errorf("sigv4: %w", err)
	}
	return nil
}

// payloadHash is the hex SHA-256 of r's body, which it leaves readable.
func payloadHash(r *http.Request) (string, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return EmptyHash, nil
	}
	h := sha256.New()
	if r.GetBody != nil {
		b, err := r.GetBody()
		if err != nil {
			return "", err
		}
		defer b.Close()
		if _, err := io.Copy(h, b); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	// A stream: it must be read whole to be hashed, and sent from memory.
	buf, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return "", err
	}
	r.ContentLength = int64(len(buf))
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Transport signs each request it sends with its Signer, then sends it
// through Base (http.DefaultTransport when nil). The caller's request is
// not changed: a clone is signed. Safe for concurrent use.
type Transport struct {
	Signer *Signer
	Base   http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	c := r.Clone(r.Context())
	if err := t.Signer.Sign(c); err != nil {
		if r.Body != nil {
			r.Body.Close() // a RoundTripper closes the body, even on error
		}
		return nil, err
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(c)
}
