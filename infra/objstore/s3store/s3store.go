package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cairnlog/cairn/infra/objstore"
)

// DefaultRegion is used when neither Config.Region nor the AWS environment
// names one. MinIO accepts it.
const DefaultRegion = "us-east-1"

// maxIdleConns is how many idle connections the store keeps to its
// endpoint. Every writer keeps up to W = 8 PUTs in flight and readers and
// the flusher run 16 to 32 GETs at once; with the SDK's default of 10 idle
// connections per host, a node with a few busy pchannels closed and
// redialled connections all the time (a TCP handshake each, and a TLS one
// on S3): `cairn bench` on eight pchannels left thousands of sockets in
// TIME_WAIT and spent about a tenth more CPU per MB appended.
const maxIdleConns = 256

// Config locates a bucket. Zero fields take the documented defaults.
type Config struct {
	// Endpoint is the S3 endpoint URL, e.g. "http://127.0.0.1:9000".
	// Default: AWS's endpoint for Region (or AWS_ENDPOINT_URL[_S3]).
	Endpoint string
	// Region. Default: the AWS environment (AWS_REGION, shared config),
	// else DefaultRegion.
	Region string
	// Bucket is required.
	Bucket string
	// Prefix, if set, is prepended to every key as Prefix + "/" + key and
	// stripped from listed keys (objstore.WithPrefix), so several
	// deployments can share a bucket. A trailing "/" is ignored. Default:
	// none.
	Prefix string
	// PathStyle addresses the bucket as endpoint/bucket/key instead of
	// bucket.endpoint/key; MinIO needs it. Default: false.
	PathStyle bool
	// AccessKey and SecretKey are static credentials. Default (both empty):
	// the AWS credential chain (environment, shared files, IAM role).
	AccessKey, SecretKey string
	// CreateBucket creates Bucket in New if it does not exist yet.
	// Default: false.
	CreateBucket bool
	// MaxAttempts bounds the SDK's attempts per idempotent request (reads,
	// List, Put, Delete); conditional PUTs always get one. Default: the
	// SDK's (3).
	MaxAttempts int
}

// Validate reports a missing bucket, a prefix that is not a valid key,
// or half of a static credential.
func (c Config) Validate() error {
	if c.Bucket == "" {
		return errors.New("s3store: no bucket configured (CAIRN_S3_BUCKET)")
	}
	if p := strings.TrimSuffix(c.Prefix, "/"); p != "" {
		if err := objstore.ValidateKey(p); err != nil {
			return fmt.Errorf("s3store: prefix: %w", err)
		}
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return errors.New("s3store: AccessKey and SecretKey must be set together")
	}
	if c.MaxAttempts < 0 {
		return fmt.Errorf("s3store: MaxAttempts %d is negative", c.MaxAttempts)
	}
	return nil
}

// ConfigFromEnv reads CAIRN_S3_ENDPOINT, CAIRN_S3_BUCKET and
// CAIRN_S3_PREFIX from getenv (os.Getenv in a main). Region and credentials are left to New, which reads the
// standard AWS environment (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_PROFILE, ...)
// through config.LoadDefaultConfig. Path-style addressing is on whenever
// an endpoint is set, as S3-compatible servers expect.
func ConfigFromEnv(getenv func(string) string) Config {
	c := Config{
		Endpoint: getenv("CAIRN_S3_ENDPOINT"),
		Bucket:   getenv("CAIRN_S3_BUCKET"),
		Prefix:   getenv("CAIRN_S3_PREFIX"),
	}
	c.PathStyle = c.Endpoint != ""
	return c
}

// Store is an objstore.Store over one bucket and prefix: the S3 adapter
// (bucket) seen through objstore.WithPrefix, which alone handles the
// prefix. Safe for concurrent use.
type Store struct {
	objstore.Store
	bucket string
	prefix string // "" or ending in "/"
}

// bucket is the S3 adapter proper: keys are object names in the bucket as
// they are. Safe for concurrent use.
type bucket struct {
	client *s3.Client
	name   string
}

// New connects to the bucket cfg names, creating it if cfg.CreateBucket.
// It sends no request otherwise; run objstore.Probe to check the store.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	if cfg.MaxAttempts > 0 {
		opts = append(opts, config.WithRetryMaxAttempts(cfg.MaxAttempts))
	}
	opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns, t.MaxIdleConnsPerHost = maxIdleConns, maxIdleConns
	})))
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3store: load AWS config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Range reads carry no whole-object checksum; don't log that.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	b := &bucket{client: client, name: cfg.Bucket}
	if cfg.CreateBucket {
		if err := b.create(ctx, awsCfg.Region); err != nil {
			return nil, err
		}
	}
	prefixed, err := objstore.WithPrefix(b, cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err) // Validate refused it already
	}
	s := &Store{Store: prefixed, bucket: cfg.Bucket}
	if p := strings.TrimSuffix(cfg.Prefix, "/"); p != "" {
		s.prefix = p + "/"
	}
	return s, nil
}

func (s *bucket) create(ctx context.Context, region string) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(s.name)}
	if region != DefaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
	}
	_, err := s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("s3store: create bucket %s: %w", s.name, classify(err, nil, nil))
	}
	return nil
}

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// Prefix returns the key prefix ("" or ending in "/").
func (s *Store) Prefix() string { return s.prefix }

// sendOnce configures a request to be sent exactly once (see the package
// documentation on retries).
func sendOnce(o *s3.Options) { o.Retryer = retry.AddWithMaxAttempts(o.Retryer, 1) }

func (s *bucket) Get(ctx context.Context, key string) (objstore.Object, error) {
	return s.get(ctx, "get", key, "")
}

// GetIfNoneMatch sends If-None-Match: etag. S3 answers 304 Not Modified,
// with no body, when the object's ETag is etag; the SDK reports that as an
// error carrying the status (and the code "NotModified"), which becomes
// objstore.ErrNotModified.
func (s *bucket) GetIfNoneMatch(ctx context.Context, key, etag string) (objstore.Object, error) {
	return s.get(ctx, "get-if-none-match", key, etag)
}

// get reads a whole object, only if its ETag is not ifNoneMatch when that
// is set.
func (s *bucket) get(ctx context.Context, op, key, ifNoneMatch string) (objstore.Object, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return objstore.Object{}, err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.name), Key: aws.String(key)}
	if ifNoneMatch != "" {
		in.IfNoneMatch = aws.String(ifNoneMatch)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if ifNoneMatch != "" && (statusOf(err) == http.StatusNotModified || codeOf(err) == "NotModified") {
			return objstore.Object{}, fmt.Errorf("s3store: %s %s: %w: %w", op, key, objstore.ErrNotModified, err)
		}
		return objstore.Object{}, fmt.Errorf("s3store: %s %s: %w", op, key, classify(err, nil, objstore.ErrNotFound))
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return objstore.Object{}, fmt.Errorf("s3store: %s %s: read body: %w", op, key, classify(err, nil, nil))
	}
	a := objstore.Attrs{
		Key:          key,
		Size:         int64(len(body)),
		ETag:         aws.ToString(out.ETag),
		Meta:         lowerKeys(out.Metadata),
		LastModified: aws.ToTime(out.LastModified),
	}
	return objstore.Object{Attrs: a, Body: body}, nil
}

// GetRange sends one ranged GET ("bytes=off-end"). A range that starts at or
// past the end of the object yields an empty reader, as in the other
// stores (S3 answers 416). Errors while reading the body wrap
// objstore.ErrTransient.
func (s *bucket) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("s3store: get range %s: negative offset %d", key, off)
	}
	if n == 0 {
		// HTTP cannot express an empty range; check existence only.
		if _, err := s.Head(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	rng := fmt.Sprintf("bytes=%d-", off)
	if n > 0 && off+n-1 >= off { // else n reaches past any object: to the end
		rng = fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.name), Key: aws.String(key), Range: aws.String(rng)})
	if err != nil {
		if statusOf(err) == 416 { // InvalidRange: the object exists, off >= size
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, fmt.Errorf("s3store: get range %s: %w", key, classify(err, nil, objstore.ErrNotFound))
	}
	return &transientBody{ReadCloser: out.Body, key: key}, nil
}

func (s *bucket) Head(ctx context.Context, key string) (objstore.Attrs, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return objstore.Attrs{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.name), Key: aws.String(key)})
	if err != nil {
		return objstore.Attrs{}, fmt.Errorf("s3store: head %s: %w", key, classify(err, nil, objstore.ErrNotFound))
	}
	return objstore.Attrs{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         aws.ToString(out.ETag),
		Meta:         lowerKeys(out.Metadata),
		LastModified: aws.ToTime(out.LastModified),
	}, nil
}

// PutIfAbsent sends If-None-Match: *, once. Metadata travels in HTTP
// headers: keys are sent lower-cased (S3 does not preserve their case), and
// keys and values must be printable ASCII.
func (s *bucket) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return "", err
	}
	if err := checkMeta(meta); err != nil {
		return "", fmt.Errorf("s3store: put-if-absent %s: %w", key, err)
	}
	in := s.putInput(key, body)
	in.IfNoneMatch = aws.String("*")
	in.Metadata = lowerKeys(meta)
	out, err := s.client.PutObject(ctx, in, sendOnce)
	if err != nil {
		return "", fmt.Errorf("s3store: put-if-absent %s: %w", key, classify(err, objstore.ErrExists, nil))
	}
	return aws.ToString(out.ETag), nil
}

// PutIfMatch sends If-Match: etag, once. S3 answers 404 when the key is
// absent; both that and 412 yield objstore.ErrConflict.
func (s *bucket) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return "", err
	}
	if etag == "" {
		// An empty If-Match header is dropped on the wire, which would
		// make this an unconditional PUT.
		return "", fmt.Errorf("s3store: put-if-match %s: empty ETag: %w", key, objstore.ErrConflict)
	}
	in := s.putInput(key, body)
	in.IfMatch = aws.String(etag)
	out, err := s.client.PutObject(ctx, in, sendOnce)
	if err != nil {
		return "", fmt.Errorf("s3store: put-if-match %s: %w", key, classify(err, objstore.ErrConflict, objstore.ErrConflict))
	}
	return aws.ToString(out.ETag), nil
}

func (s *bucket) Put(ctx context.Context, key string, body []byte) (string, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return "", err
	}
	out, err := s.client.PutObject(ctx, s.putInput(key, body))
	if err != nil {
		return "", fmt.Errorf("s3store: put %s: %w", key, classify(err, nil, nil))
	}
	return aws.ToString(out.ETag), nil
}

func (s *bucket) putInput(key string, body []byte) *s3.PutObjectInput {
	return &s3.PutObjectInput{
		Bucket:        aws.String(s.name),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	}
}

// List pages through ListObjectsV2 (1,000 keys a page). Listed Attrs carry
// Key, Size, ETag and LastModified but no user metadata, which S3 does not
// list.
func (s *bucket) List(ctx context.Context, prefix, startAfter string, fn func(objstore.Attrs) error) error {
	if err := objstore.ValidatePrefix(prefix); err != nil {
		return err
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.name), Prefix: aws.String(prefix)}
	if startAfter != "" {
		in.StartAfter = aws.String(startAfter)
	}
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3store: list %q after %q: %w", prefix, startAfter, classify(err, nil, nil))
		}
		for _, o := range page.Contents {
			err := fn(objstore.Attrs{
				Key:          aws.ToString(o.Key),
				Size:         aws.ToInt64(o.Size),
				ETag:         aws.ToString(o.ETag),
				LastModified: aws.ToTime(o.LastModified),
			})
			if errors.Is(err, objstore.ErrStopList) {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *bucket) Delete(ctx context.Context, key string) error {
	if err := objstore.ValidateKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.name), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("s3store: delete %s: %w", key, classify(err, nil, nil))
	}
	return nil
}

// lowerKeys returns meta with lower-case keys, nil if it is empty: S3
// does not preserve the case of metadata keys, and objstore.Attrs promises
// lower case.
func lowerKeys(meta map[string]string) map[string]string {
	if len(meta) == 0 {
		return nil
	}
	out := make(map[string]string, len(meta))
	for k, v := range meta {
		out[strings.ToLower(k)] = v
	}
	return out
}

// checkMeta rejects metadata that cannot travel as x-amz-meta-* headers.
func checkMeta(meta map[string]string) error {
	printable := func(s string) bool {
		for i := range len(s) {
			if s[i] < 0x20 || s[i] > 0x7e {
				return false
			}
		}
		return true
	}
	for k, v := range meta {
		if k == "" || strings.ContainsAny(k, " :") || !printable(k) || !printable(v) {
			return fmt.Errorf("metadata %q=%q: keys and values must be printable ASCII, keys non-empty without spaces or colons", k, v)
		}
	}
	return nil
}

// transientBody maps failures while streaming a body onto ErrTransient.
type transientBody struct {
	io.ReadCloser
	key string
}

func (b *transientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("s3store: get range %s: read body: %w", b.key, classify(err, nil, nil))
	}
	return n, err
}
