package api

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cairnlog/cairn/cache"
	"github.com/cairnlog/cairn/functions/system"
)

// EnvVar documents one environment variable the functions read.
type EnvVar struct {
	Name string
	Doc  string
	// LocalOnly variables are for MinIO and local runs; template.yaml leaves
	// them unset on purpose (AWS's defaults apply).
	LocalOnly bool
}

// EnvVars lists every CAIRN_* variable the functions read: LoadEnv's, and
// the store's (s3store.ConfigFromEnv). template.yaml sets
// each one that is not LocalOnly for every function (a test checks it, and
// that no other CAIRN_* name appears in the code the functions link).
var EnvVars = []EnvVar{
	{Name: "CAIRN_S3_BUCKET", Doc: "bucket name (required)"},
	{Name: "CAIRN_S3_PREFIX", Doc: "key prefix inside the bucket, so deployments can share one"},
	{Name: "CAIRN_S3_ENDPOINT", Doc: "S3 endpoint URL for MinIO or another S3-compatible store; path-style addressing when set", LocalOnly: true},
	{Name: "CAIRN_LEASE_TTL", Doc: "pchannel lease TTL, a Go duration (default 10s)"},
	{Name: "CAIRN_LEASE_MARGIN", Doc: "lease safety margin, a Go duration (default min(2.5s, TTL/4))"},
	{Name: "CAIRN_WRITE_MODE", Doc: "exclusive, takeover or shared: how node functions write pchannels (default exclusive; template.yaml sets shared)"},
	{Name: "CAIRN_LEASE_WAIT", Doc: "how long a request waits for another holder's lease before 503 (default 2s)"},
	{Name: "CAIRN_CACHE_BYTES", Doc: "write-ahead cache budget in bytes (default 64 MiB in Lambda, 256 MiB elsewhere)"},
	{Name: "CAIRN_MAX_BODY_BYTES", Doc: "request body limit in bytes (default 2 MiB + 64 KiB)"},
	{Name: "CAIRN_MAX_WAIT", Doc: "longest read long-poll and broadcast wait, a Go duration (default 20s; below the function timeout)"},
	{Name: "CAIRN_SCANNER_STARTUP_DELAY", Doc: "hold reads back this long after start (write-only recovery), a Go duration (default 0: none)"},
	{Name: "CAIRN_COMPACTION", Doc: "on or off: whether maintenance merges small segment files (default on; off during a rolling upgrade from a version without compaction)"},
	{Name: "CAIRN_PCHANNELS", Doc: "the pchannel set, comma-separated names (default p0,p1,p2,p3); every function of a deployment must see the same set"},
	{Name: "CAIRN_LOG_LEVEL", Doc: "debug, info, warn or error (default info)"},
}

// Env is the configuration LoadEnv reads.
type Env struct {
	System   system.Config
	API      Config
	LogLevel slog.Level
}

// Validate applies the defaults of both configurations and reports values
// they cannot run with (the serve command changes a few fields first).
func (e *Env) Validate() error {
	e.System.EnsureDefaults()
	if err := e.System.Validate(); err != nil {
		return err
	}
	e.API.EnsureDefaults(e.System)
	return e.API.Validate()
}

// LoadEnv reads the functions' configuration but the store's from getenv
// (os.Getenv in main). Unset variables take the defaults of system.Config
// and Config, applied; in a Lambda container
// (AWS_LAMBDA_FUNCTION_NAME set) the cache defaults to
// cache.DefaultLambdaBytes and the lease holder is named after the
// container's log stream, which is unique per container. Logs go to stderr
// as JSON lines (CloudWatch keeps them), at CAIRN_LOG_LEVEL.
func LoadEnv(getenv func(string) string) (Env, error) {
	var e Env
	if getenv("AWS_LAMBDA_FUNCTION_NAME") != "" {
		e.System.CacheBytes = cache.DefaultLambdaBytes
		if stream := getenv("AWS_LAMBDA_LOG_STREAM_NAME"); stream != "" {
			e.System.Holder = getenv("AWS_LAMBDA_FUNCTION_NAME") + "/" + stream
		}
	}
	var errs []string
	duration := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Sprintf("%s=%q: want a non-negative Go duration such as 10s", name, v))
				return
			}
			*dst = d
		}
	}
	bytes := func(name string, dst *int64) {
		if v := getenv(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Sprintf("%s=%q: want a positive number of bytes", name, v))
				return
			}
			*dst = n
		}
	}
	duration("CAIRN_LEASE_TTL", &e.System.LeaseTTL)
	duration("CAIRN_LEASE_MARGIN", &e.System.LeaseMargin)
	duration("CAIRN_LEASE_WAIT", &e.System.LeaseWait)
	duration("CAIRN_MAX_WAIT", &e.API.MaxWait)
	if v := getenv("CAIRN_WRITE_MODE"); v != "" {
		m, err := system.ParseWriteMode(v)
		if err != nil {
			errs = append(errs, "CAIRN_WRITE_MODE: "+err.Error())
		}
		e.System.WriteMode = m
	}
	duration("CAIRN_SCANNER_STARTUP_DELAY", &e.API.ScannerStartupDelay)
	bytes("CAIRN_CACHE_BYTES", &e.System.CacheBytes)
	bytes("CAIRN_MAX_BODY_BYTES", &e.API.MaxBodyBytes)
	switch v := getenv("CAIRN_COMPACTION"); v {
	case "", "on":
	case "off":
		e.System.NoCompaction = true
	default:
		errs = append(errs, fmt.Sprintf("CAIRN_COMPACTION=%q: want on or off", v))
	}
	if v := getenv("CAIRN_PCHANNELS"); v != "" {
		for _, p := range strings.Split(v, ",") {
			e.System.PChannels = append(e.System.PChannels, strings.TrimSpace(p))
		}
	}
	if v := getenv("CAIRN_LOG_LEVEL"); v != "" {
		if err := e.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Sprintf("CAIRN_LOG_LEVEL=%q: want debug, info, warn or error", v))
		}
	}
	if len(errs) > 0 {
		return Env{}, fmt.Errorf("api: environment: %s", strings.Join(errs, "; "))
	}
	e.System.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: e.LogLevel}))
	if err := e.Validate(); err != nil {
		return Env{}, err
	}
	return e, nil
}
