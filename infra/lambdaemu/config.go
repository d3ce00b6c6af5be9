package lambdaemu

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// ReapMode says how an environment is taken away.
type ReapMode int

const (
	// ReapShutdown is Lambda's Shutdown phase: with no extension
	// registered the environment is killed at once; otherwise the runtime
	// gets SIGTERM, extensions subscribed to SHUTDOWN get the event, and
	// the group is killed after the grace period (GraceInternal with
	// internal extensions only, GraceExternal with an external one) unless
	// every process has exited by then.
	ReapShutdown ReapMode = iota
	// ReapKill sends SIGKILL to the environment's process group without
	// warning, as Lambda does to an environment it loses.
	ReapKill
)

func (m ReapMode) String() string {
	if m == ReapKill {
		return "kill"
	}
	return "shutdown"
}

// The Shutdown phase's grace periods, as Lambda documents them.
const (
	GraceInternal = 500 * time.Millisecond
	GraceExternal = 2 * time.Second
)

// Config describes one emulated function. Zero values take the defaults
// stated on each field.
type Config struct {
	// Name is AWS_LAMBDA_FUNCTION_NAME. Default "function".
	Name string
	// Bootstrap is the executable each environment runs (a binary built
	// with -tags lambda.norpc, see Build). Required.
	Bootstrap string
	// Extensions are executables started beside the bootstrap in every
	// environment, as Lambda starts /opt/extensions/*: external extensions,
	// named by their file name. Default none.
	Extensions []string
	// Env holds the function's environment variables; they override the
	// ones Lambda sets.
	Env map[string]string
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE. Default 512.
	MemoryMB int
	// Region is AWS_REGION. Default "us-east-1".
	Region string
	// Timeout is the function timeout: an invocation (with its extensions'
	// post-invoke work) running longer destroys its environment. Default 3 s,
	// Lambda's default.
	Timeout time.Duration
	// InitTimeout bounds the init phase (process start until the runtime
	// and every extension asked for the next event). Default 10 s.
	InitTimeout time.Duration
	// ReservedConcurrency is the most environments alive at once; a request
	// finding all of them busy is throttled. Default 10.
	ReservedConcurrency int
	// Policy picks the idle environment a request goes to. Default
	// MostRecent().
	Policy Policy
	// IdleTimeout reaps an environment idle (frozen) this long. Default 0:
	// never.
	IdleTimeout time.Duration
	// Reap is how IdleTimeout takes an environment away. Default
	// ReapShutdown.
	Reap ReapMode
	// NoFreeze leaves idle environments running instead of stopping them
	// (for comparison only: Lambda always freezes). Default false.
	NoFreeze bool
	// LogStream names environment id's AWS_LAMBDA_LOG_STREAM_NAME. Default
	// "YYYY/MM/DD/[$LATEST]" and 32 hex digits.
	LogStream func(id int) string
	// Logs, if set, also gets every process's standard output and error.
	Logs io.Writer
	// Auth, if set, makes the Function URL require AWS_IAM (SigV4) auth.
	Auth *IAMAuth
	// Hooks are called on environment events.
	Hooks Hooks
}

// Hooks are called by the emulator's goroutines with no lock held; they
// may call any method of Env or Function but Close, and should return
// quickly. Nil hooks are skipped.
type Hooks struct {
	// Event, if set, may change each Function URL event before it is
	// invoked (say, send a text body base64-encoded, as a runtime must also
	// accept). It runs on the request's goroutine.
	Event func(ev *events.LambdaFunctionURLRequest)
	// Started is called when an environment's process has started.
	Started func(env *Env)
	// Invoked is called once env's runtime has been sent an invocation's
	// event (from the handler of its .../next, which waits for the hook).
	Invoked func(env *Env, requestID string)
	// Idle is called when env went idle: its runtime and every extension
	// asked for their next event (the Frozen call follows unless NoFreeze).
	Idle func(env *Env)
	// Frozen is called after env has been stopped (SIGSTOP) and every
	// process of it shows stopped.
	Frozen func(env *Env)
	// Exited is called once env's processes are gone.
	Exited func(env *Env)
}

// ErrConfig is wrapped by every refusal of Validate.
var ErrConfig = errors.New("lambdaemu: bad config")

// Validate reports the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Bootstrap == "":
		return fmt.Errorf("%w: no Bootstrap", ErrConfig)
	case c.Timeout < 0, c.InitTimeout < 0, c.IdleTimeout < 0:
		return fmt.Errorf("%w: negative duration", ErrConfig)
	case c.ReservedConcurrency < 0:
		return fmt.Errorf("%w: negative ReservedConcurrency", ErrConfig)
	case c.MemoryMB < 0:
		return fmt.Errorf("%w: negative MemoryMB", ErrConfig)
	case c.Reap != ReapShutdown && c.Reap != ReapKill:
		return fmt.Errorf("%w: unknown Reap mode %d", ErrConfig, c.Reap)
	}
	if c.Auth != nil {
		if err := c.Auth.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) applyDefaults() {
	if c.Name == "" {
		c.Name = "function"
	}
	if c.MemoryMB == 0 {
		c.MemoryMB = 512
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.Timeout == 0 {
		c.Timeout = 3 * time.Second
	}
	if c.InitTimeout == 0 {
		c.InitTimeout = 10 * time.Second
	}
	if c.ReservedConcurrency == 0 {
		c.ReservedConcurrency = 10
	}
	if c.Policy == nil {
		c.Policy = MostRecent()
	}
}
