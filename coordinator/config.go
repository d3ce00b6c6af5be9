package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// Defaults of Config.
const (
	// DefaultPChannelCount pchannels, named "p0", "p1", ..., exist when
	// Config.PChannels is empty.
	DefaultPChannelCount = 4
	// DefaultHeartbeatInterval: a node writes its session record this often.
	DefaultHeartbeatInterval = 3 * time.Second
	// DefaultSessionTTL: a session whose last heartbeat is older is not
	// alive. It covers two lost heartbeats plus a request timeout.
	DefaultSessionTTL = 10 * time.Second
	// DefaultPollInterval: a node lists the assignment records this often
	// (one LIST; records are read only when their ETag changed).
	DefaultPollInterval = 2 * time.Second
	// DefaultCheckInterval: a balancer runs a round this often while
	// anything is in transit.
	DefaultCheckInterval = time.Second
	// DefaultMaxCheckInterval: a balancer whose rounds find everything
	// settled backs off to a round this often.
	DefaultMaxCheckInterval = 16 * time.Second
	// DefaultMaxPollInterval: a node whose polls find no change backs off
	// to a poll this often.
	DefaultMaxPollInterval = 16 * time.Second
	// DefaultStuckTimeout: an assignment that stays in "assigning" this long
	// after its lease became free is moved to another node.
	DefaultStuckTimeout = 30 * time.Second
)

// Config configures the vchannel registry (Registry), the balancer
// (Balancer) and the node runtime (Node). Every process of a deployment must
// use the same Layout, PChannels and SessionTTL. Zero fields take the
// documented defaults. A Config is a plain value; constructors copy it.
type Config struct {
	// Layout names the objects; it must equal the Leases' layout.
	Layout segmentlog.Layout
	// PChannels are the pchannels that must exist. A balancer or registry
	// creates an "unassigned" assignment record for each one that has none;
	// the pchannel set is the set of assignment records, so it only grows
	// (records are never deleted): removing a name here does not remove
	// the pchannel. Default: "p0" … "p3" (DefaultPChannelCount).
	PChannels []string
	// HeartbeatInterval: how often a node writes its session record.
	// Default 3s.
	HeartbeatInterval time.Duration
	// SessionTTL: a session is alive while now ≤ last heartbeat + SessionTTL
	// (and it is not stopped). At least 2 × HeartbeatInterval. An expired
	// session alone never moves a pchannel whose lease is live. Default 10s.
	SessionTTL time.Duration
	// PollInterval: how often a node looks for changed assignments while
	// they change (or a Hold is due). Default 2s.
	PollInterval time.Duration
	// MaxPollInterval: a node's pause between polls doubles from
	// PollInterval up to this while polls find no change; a change, or
	// Node.Kick, brings it back. At least PollInterval. Default 16s.
	MaxPollInterval time.Duration
	// CheckInterval: how often Balancer.Run runs a round while anything
	// is in transit. Default 1s.
	CheckInterval time.Duration
	// MaxCheckInterval: Balancer.Run's pause doubles from CheckInterval up
	// to this while rounds find every pchannel settled. At least
	// CheckInterval. Default 16s.
	MaxCheckInterval time.Duration
	// StuckTimeout: an assignment in "assigning" whose node has not taken
	// the lease this long after the lease became free is reassigned, and
	// balancing sends that node nothing for 4 × StuckTimeout. Default 30s.
	StuckTimeout time.Duration
	// RequestTimeout bounds each store request. Default 1s
	// (DefaultRequestTimeout).
	RequestTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives state changes (Info) and retried failures (Warn).
	// Default slog.Default().
	Logger *slog.Logger
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if len(c.PChannels) == 0 {
		for i := range DefaultPChannelCount {
			c.PChannels = append(c.PChannels, fmt.Sprintf("p%d", i))
		}
	} else {
		c.PChannels = slices.Clone(c.PChannels)
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.MaxPollInterval == 0 {
		c.MaxPollInterval = max(DefaultMaxPollInterval, c.PollInterval)
	}
	if c.MaxCheckInterval == 0 {
		c.MaxCheckInterval = max(DefaultMaxCheckInterval, c.CheckInterval)
	}
	if c.StuckTimeout == 0 {
		c.StuckTimeout = DefaultStuckTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports a configuration the components cannot run with. It is
// meant for a Config with its defaults applied (the constructors do that).
func (c Config) Validate() error {
	seen := make(map[string]bool, len(c.PChannels))
	for _, p := range c.PChannels {
		if err := segmentlog.ValidateName("pchannel", p); err != nil {
			return fmt.Errorf("coordinator: config: %w", err)
		}
		if seen[p] {
			return fmt.Errorf("coordinator: config: pchannel %q listed twice", p)
		}
		seen[p] = true
	}
	switch {
	case len(c.PChannels) == 0:
		return errors.New("coordinator: config: no pchannels")
	case c.HeartbeatInterval <= 0 || c.PollInterval <= 0 || c.CheckInterval <= 0 ||
		c.StuckTimeout <= 0 || c.RequestTimeout <= 0:
		return errors.New("coordinator: config: intervals and timeouts must be > 0")
	case c.MaxPollInterval < c.PollInterval || c.MaxCheckInterval < c.CheckInterval:
		return errors.New("coordinator: config: a max interval is below its interval")
	case c.SessionTTL < 2*c.HeartbeatInterval:
		return fmt.Errorf("coordinator: config: session TTL %v is below 2 × heartbeat interval %v", c.SessionTTL, c.HeartbeatInterval)
	case c.Now == nil || c.Logger == nil:
		return errors.New("coordinator: config: nil clock or logger")
	}
	return nil
}
