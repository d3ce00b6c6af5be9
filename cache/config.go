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
	// sizes) of the entries held, plus a fixed bookkeeping overhead per entry.
	// Default (0): DefaultLocalBytes. Use DefaultLambdaBytes in a Lambda
	// container. Otherwise at least MinBytes.
	MaxBytes int64

	// NumCounters is the number of access-frequency counters of ristretto's
	// admission policy (about 3 bytes each); about 10 × the number of entries
	// expected when full works well. Default (0): MaxBytes / 4 KiB × 10, and
	// at least 10 000.
	NumCounters int64

	// Metrics turns on ristretto's hit and miss counting, which Stats.Hits
	// and Stats.Misses come from. Default false: those two stay zero. Bytes,
	// Evictions and Rejected are counted either way.
	Metrics bool
}

// Validate reports whether c is usable, before defaults are applied: zero
// fields mean "default", negative values and budgets below MinBytes are
// errors. The error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	switch {
	case c.MaxBytes < 0:
		return fmt.Errorf("%w: MaxBytes %d is negative", ErrInvalidConfig, c.MaxBytes)
	case c.MaxBytes != 0 && c.MaxBytes < MinBytes:
		return fmt.Errorf("%w: MaxBytes %d is below MinBytes (%d)", ErrInvalidConfig, c.MaxBytes, MinBytes)
	case c.NumCounters < 0:
		return fmt.Errorf("%w: NumCounters %d is negative", ErrInvalidConfig, c.NumCounters)
	}
	return nil
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultLocalBytes
	}
	if c.NumCounters == 0 {
		c.NumCounters = max(c.MaxBytes/expectedItemBytes*10, minCounters)
	}
	return c
}
