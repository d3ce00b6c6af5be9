package testkit

import (
	"context"
	"errors"
	"testing"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// Nexter is what ScanToTail reads: a *segmentlog.Scanner, or a wrapper of
// one.
type Nexter interface {
	Next(ctx context.Context) (segmentlog.Delivery, error)
}

// ScanToTail reads sc until it reports segmentlog.ErrTail and returns what
// it delivered, in order. Any other error fails tb. sc stays open (the
// caller closes it), and a scanner that waits at the tail (not NoWait)
// blocks here until ctx ends.
func ScanToTail(tb testing.TB, ctx context.Context, sc Nexter) []segmentlog.Delivery {
	tb.Helper()
	var out []segmentlog.Delivery
	for {
		d, err := sc.Next(ctx)
		if errors.Is(err, segmentlog.ErrTail) {
			return out
		}
		if err != nil {
			tb.Fatalf("scan: after %d messages: %v", len(out), err)
		}
		out = append(out, d)
	}
}

// Scan opens a scanner with cfg on store, NoWait set, reads it to the tail
// and closes it. cfg.From is where the scan starts (the zero Position is
// the earliest message); an error fails tb.
func Scan(tb testing.TB, ctx context.Context, store objstore.Store, cfg segmentlog.ScannerConfig) []segmentlog.Delivery {
	tb.Helper()
	cfg.NoWait = true
	sc, err := segmentlog.NewScanner(ctx, cfg, store)
	if err != nil {
		tb.Fatalf("scan %s from %v: %v", cfg.PChannel, cfg.From, err)
	}
	defer sc.Close()
	return ScanToTail(tb, ctx, sc)
}
