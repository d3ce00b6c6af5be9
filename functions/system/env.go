package system

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cairnlog/cairn/cache"
)

// EnvVar documents one environment variable a Cairn function reads.
type EnvVar struct {
	Name string
	Doc  string
	// LocalOnly variables are for MinIO and local runs; template.yaml leaves
	// them unset on purpose (AWS's defaults apply).
	LocalOnly bool
}

// EnvVars lists the CAIRN_* variables of the runtime: ConfigFromEnv's and
// the store's (s3store.ConfigFromEnv). functions/api adds its own to them
// (api.EnvVars).
var EnvVars = []EnvVar{
	{Name: "CAIRN_S3_BUCKET", Doc: "bucket name (required)"},
	{Name: "CAIRN_S3_PREFIX", Doc: "key prefix inside the bucket, so deployments can share one"},
	{Name: "CAIRN_S3_ENDPOINT", Doc: "S3 endpoint URL for MinIO or another S3-compatible store; path-style addressing when set", LocalOnly: true},
	{Name: "CAIRN_LEASE_TTL", Doc: "pchannel lease TTL, a Go duration (default 10s)"},
	{Name: "CAIRN_LEASE_MARGIN", Doc: "lease safety margin, a Go duration (default min(2.5s, TTL/4))"},
	{Name: "CAIRN_WRITE_MODE", Doc: "exclusive, takeover or shared: how node functions write pchannels (default exclusive; template.yaml sets shared)"},
	{Name: "CAIRN_LEASE_WAIT", Doc: "how long a request waits for another holder's lease before 503 (default 2s)"},
	{Name: "CAIRN_CACHE_BYTES", Doc: "write-ahead cache budget in bytes (default 64 MiB in Lambda, 256 MiB elsewhere)"},
	{Name: "CAIRN_COMPACTION", Doc: "on or off: whether maintenance merges small segment files (default on; off during a rolling upgrade from a version without compaction)"},
	{Name: "CAIRN_PCHANNELS", Doc: "the pchannel set, comma-separated names (default p0,p1,p2,p3); every function of a deployment must see the same set"},
	{Name: "CAIRN_SCANNER_STARTUP_DELAY", Doc: "hold reads back this long after start (write-only recovery), a Go duration (default 0: none)"},
	{Name: "CAIRN_LOG_LEVEL", Doc: "debug, info, warn or error (default info)"},
}

// Env reads environment variables through getenv, collecting what is
// wrong with them; Err reports it all at once.
type Env struct {
	getenv   func(string) string
	problems []string
}

// NewEnv reads through getenv (os.Getenv in a main).
func NewEnv(getenv func(string) string) *Env { return &Env{getenv: getenv} }

// Get is the variable's value, "" if unset.
func (e *Env) Get(name string) string { return e.getenv(name) }

// Problem notes what is wrong with a variable.
func (e *Env) Problem(format string, args ...any) {
	e.problems = append(e.problems, fmt.Sprintf(format, args...))
}

// Duration sets *dst to the variable, a non-negative Go duration, if set.
func (e *Env) Duration(name string, dst *time.Duration) {
	if v := e.getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			e.Problem("%s=%q: want a non-negative Go duration such as 10s", name, v)
			return
		}
		*dst = d
	}
}

// Bytes sets *dst to the variable, a positive number of bytes, if set.
func (e *Env) Bytes(name string, dst *int64) {
	if v := e.getenv(name); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			e.Problem("%s=%q: want a positive number of bytes", name, v)
			return
		}
		*dst = n
	}
}

// Err is every problem noted, in one error; nil if none.
func (e *Env) Err() error {
	if len(e.problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(e.problems, "; "))
}

// ConfigFromEnv reads the system's configuration from env (defaults not
// applied): unset variables leave their fields zero. In a Lambda container
// (AWS_LAMBDA_FUNCTION_NAME set) the cache defaults to
// cache.DefaultLambdaBytes and the lease holder is named after the
// container's log stream, which is unique per container. Logs go to stderr
// as JSON lines (CloudWatch keeps them), at CAIRN_LOG_LEVEL, which it
// returns too. Problems are noted on env.
func ConfigFromEnv(env *Env) (Config, slog.Level) {
	var c Config
	var level slog.Level
	if fn := env.Get("AWS_LAMBDA_FUNCTION_NAME"); fn != "" {
		c.CacheBytes = cache.DefaultLambdaBytes
		if stream := env.Get("AWS_LAMBDA_LOG_STREAM_NAME"); stream != "" {
			c.Holder = fn + "/" + stream
		}
	}
	env.Duration("CAIRN_LEASE_TTL", &c.LeaseTTL)
	env.Duration("CAIRN_LEASE_MARGIN", &c.LeaseMargin)
	env.Duration("CAIRN_LEASE_WAIT", &c.LeaseWait)
	env.Duration("CAIRN_SCANNER_STARTUP_DELAY", &c.ScannerStartupDelay)
	if v := env.Get("CAIRN_WRITE_MODE"); v != "" {
		m, err := ParseWriteMode(v)
		if err != nil {
			env.Problem("CAIRN_WRITE_MODE: %v", err)
		}
		c.WriteMode = m
	}
	env.Bytes("CAIRN_CACHE_BYTES", &c.CacheBytes)
	switch v := env.Get("CAIRN_COMPACTION"); v {
	case "", "on":
	case "off":
		c.NoCompaction = true
	default:
		env.Problem("CAIRN_COMPACTION=%q: want on or off", v)
	}
	if v := env.Get("CAIRN_PCHANNELS"); v != "" {
		for _, p := range strings.Split(v, ",") {
			c.PChannels = append(c.PChannels, strings.TrimSpace(p))
		}
	}
	if v := env.Get("CAIRN_LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			env.Problem("CAIRN_LOG_LEVEL=%q: want debug, info, warn or error", v)
		}
	}
	c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return c, level
}
