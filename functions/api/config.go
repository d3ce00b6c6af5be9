package api

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/segmentlog"
)

// Config configures a Server's HTTP side: request limits, reads, the
// connection limits of `cairn serve` and its token. Each field says its
// default; EnsureDefaults fills the zero fields, Validate (after it)
// reports values the server cannot run with. What is not HTTP — leases,
// writers, the cache, the pchannel set, the scanner startup delay — is the
// system's (system.Config); LoadEnv reads both.
type Config struct {
	// MaxBodyBytes bounds a request body. Default 2 × the system's
	// MaxBatchBytes + 64 KiB: room for a full batch in base64 JSON. Lambda
	// Function URLs accept at most 6 MB.
	MaxBodyBytes int64
	// MaxAppendMessages bounds the messages of one append request. Default
	// 10,000.
	MaxAppendMessages int

	// MaxReadMessages caps the max parameter of a read. Default 10,000;
	// a read without max returns at most DefaultReadMessages (100).
	MaxReadMessages int
	// MaxReadBytes bounds the payload bytes of one read response (at least
	// one message is always returned). Default 4 MiB, so that a response
	// stays under Lambda's 6 MB even in base64.
	MaxReadBytes int
	// MaxWait caps the wait parameter of a read (long poll) and the wait
	// of a broadcast request. Default 20 s; a Lambda function's timeout
	// must exceed it.
	MaxWait time.Duration
	// MaxWaiters bounds the reads waiting at the tail at once; more are
	// answered 429 with Retry-After. Default 1,024.
	MaxWaiters int

	// Connection limits of HTTPServer and Listener (cairn serve; a Lambda
	// function's URL has its own). HeaderTimeout: reading a request's
	// headers, default 10 s. BodyTimeout: reading a request's body, default
	// 60 s (2 MiB at 35 KB/s). WriteTimeout: writing the answer, from the
	// end of the headers, default 60 s; a long poll (a read's or a
	// broadcast's wait) adds its wait. IdleTimeout: a keep-alive connection
	// between requests, default 60 s. MaxConns: open connections; more
	// wait in the listen backlog until one closes, default 1,024. A
	// negative duration turns that timeout off.
	HeaderTimeout time.Duration
	BodyTimeout   time.Duration
	WriteTimeout  time.Duration
	IdleTimeout   time.Duration
	MaxConns      int

	// Token, if set, is required as "Authorization: Bearer <token>" on
	// every request but GET and HEAD /healthz (compared in constant time, never
	// logged). Lambda functions leave it empty: their URLs use AWS_IAM.
	Token string
}

// Defaults of Config.
const (
	DefaultMaxAppendMessages = 10_000
	DefaultReadMessages      = 100
	DefaultMaxReadMessages   = 10_000
	DefaultMaxReadBytes      = 4 << 20
	DefaultMaxWait           = 20 * time.Second
	DefaultMaxWaiters        = 1024
	DefaultHeaderTimeout     = 10 * time.Second
	DefaultBodyTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxConns          = 1024
)

// EnsureDefaults sets every zero field to its default; sys is the
// system's configuration, defaults applied (MaxBodyBytes follows its
// MaxBatchBytes).
func (c *Config) EnsureDefaults(sys system.Config) {
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, 2*int64(cmp.Or(sys.MaxBatchBytes, system.DefaultMaxBatchBytes))+64<<10)
	c.MaxAppendMessages = cmp.Or(c.MaxAppendMessages, DefaultMaxAppendMessages)
	c.MaxReadMessages = cmp.Or(c.MaxReadMessages, DefaultMaxReadMessages)
	c.MaxReadBytes = cmp.Or(c.MaxReadBytes, DefaultMaxReadBytes)
	c.MaxWait = cmp.Or(c.MaxWait, DefaultMaxWait)
	c.MaxWaiters = cmp.Or(c.MaxWaiters, DefaultMaxWaiters)
	c.HeaderTimeout = cmp.Or(c.HeaderTimeout, DefaultHeaderTimeout)
	c.BodyTimeout = cmp.Or(c.BodyTimeout, DefaultBodyTimeout)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	c.MaxConns = cmp.Or(c.MaxConns, DefaultMaxConns)
}

// Validate reports a configuration the server cannot run with. Call it
// after EnsureDefaults.
func (c Config) Validate() error {
	switch {
	case c.MaxBodyBytes < 1:
		return fmt.Errorf("api: max body bytes %d must be positive", c.MaxBodyBytes)
	case c.MaxAppendMessages < 1 || c.MaxAppendMessages > segmentlog.MaxMessages:
		return fmt.Errorf("api: max append messages %d out of range 1..%d", c.MaxAppendMessages, segmentlog.MaxMessages)
	case c.MaxReadMessages < 1 || c.MaxReadBytes < 1 || c.MaxWait < 0 || c.MaxWaiters < 1 || c.MaxConns < 1:
		return errors.New("api: read limits must be positive (max wait ≥ 0)")
	}
	return nil
}
