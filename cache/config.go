package cache

import (
	"errors"
	"fmt"
)

// Budgets.
const (
	// DefaultLocalBytes is the default budget of a long-running node
	// (embedded mode, cairn serve): 256 MiB.
	DefaultLocalBytes int64 = 256 << 20
	// DefaultLambdaBytes is the budget to use in a Lambda container, whose
	// memory is small and billed: 64 MiB.
	DefaultLambdaBytes int64 = 64 << 20
	// MinBytes is the smallest budget Validate accepts: 64 KiB.
	MinBytes int64 = 64 << 10

	// DefaultRecentEntries is the default of Config.RecentEntries: 128
	// batches per pchannel, so that a tail reader that falls behind its
	// writer for a moment (a GC pause, a burst of acks) still reads from
	// memory.
	DefaultRecentEntries = 128

	// expectedItemBytes is the batch size assumed when deriving NumCounters.
	expectedItemBytes = 4 << 10
	// minCounters is the floor of the derived NumCounters.
	minCounters = 10_000
)

// ErrInvalidConfig is wrapped by Config.Validate and New.
var ErrInvalidConfig = errors.New("cache: invalid config")

// Config configures a Cache. The zero value is valid and means "all defaults".
type Config struct {
	// MaxBytes is the memory budget: the sum of the costs (encoded batch
	// sizes) of the entries held, plus a fixed bookkeeping overhead per entry,
	// over the recent layer and ristretto together.
	// Default (0): DefaultLocalBytes. Use DefaultLambdaBytes in a Lambda
	// container. Otherwise at least MinBytes.
	MaxBytes int64

	// NumCounters is the number of access-frequency counters of ristretto's
	// admission policy (about 3 bytes each); about 10 × the number of entries
	// expected when full works well. Default (0): MaxBytes / 4 KiB × 10, and
	// at least 10 000.
	NumCounters int64

	// RecentBytes is the share of MaxBytes held by the recent layer: the
	// entries Put last, visible to the very next Get and never refused by
	// an admission policy, which a reader following the tail hits. It
	// bounds the layer across all pchannels, per-entry overhead included;
	// ristretto holds the rest of the budget (MaxBytes − RecentBytes), fed
	// by what the recent layer overflows. Default (0): MaxBytes / 4.
	// Otherwise below MaxBytes.
	RecentBytes int64

	// RecentEntries bounds the entries the recent layer keeps per
	// pchannel; the oldest beyond it moves on to ristretto. Default (0):
	// DefaultRecentEntries.
	RecentEntries int

	// Metrics turns on ristretto's hit and miss counting, which Stats.Hits
	// and Stats.Misses come from. Default false: those two stay zero. Bytes,
	// Evictions and Rejected are counted either way.
	Metrics bool
}

// Validate reports whether c is usable, before defaults are applied: zero
// fields mean "default"; negative values, budgets below MinBytes and a
// RecentBytes that leaves ristretto no room are errors. The error wraps
// ErrInvalidConfig.
func (c Config) Validate() error {
	switch {
	case c.MaxBytes < 0:
		return fmt.Errorf("%w: MaxBytes %d is negative", ErrInvalidConfig, c.MaxBytes)
	case c.MaxBytes != 0 && c.MaxBytes < MinBytes:
		return fmt.Errorf("%w: MaxBytes %d is below MinBytes (%d)", ErrInvalidConfig, c.MaxBytes, MinBytes)
	case c.NumCounters < 0:
		return fmt.Errorf("%w: NumCounters %d is negative", ErrInvalidConfig, c.NumCounters)
	case c.RecentBytes < 0:
		return fmt.Errorf("%w: RecentBytes %d is negative", ErrInvalidConfig, c.RecentBytes)
	case c.RecentBytes != 0 && c.RecentBytes >= c.withDefaults().MaxBytes:
		return fmt.Errorf("%w: RecentBytes %d leaves no room for ristretto in MaxBytes %d", ErrInvalidConfig, c.RecentBytes, c.withDefaults().MaxBytes)
	case c.RecentEntries < 0:
		return fmt.Errorf("%w: RecentEntries %d is negative", ErrInvalidConfig, c.RecentEntries)
	}
	return nil
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultLocalBytes
	}
	if c.RecentBytes == 0 {
		c.RecentBytes = c.MaxBytes / 4
	}
	if c.RecentEntries == 0 {
		c.RecentEntries = DefaultRecentEntries
	}
	if c.NumCounters == 0 {
		c.NumCounters = max(c.MaxBytes/expectedItemBytes*10, minCounters)
	}
	return c
}
