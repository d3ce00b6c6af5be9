package segmentlog_test

import (
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// TestTortureFS runs the torture on the filesystem store that `cairn serve`
// uses by default (--store fs), the third store docs/protocol.md names.
func TestTortureFS(t *testing.T) {
	runTorture(t, tortureConfig{
		name:   "fs",
		rounds: 2,
		timings: tortureTimings{
			// skew + R ≤ m and I + 2R ≤ TTL − m, as docs/protocol.md requires.
			ttl: 300 * time.Millisecond, margin: 100 * time.Millisecond, renew: 60 * time.Millisecond,
			put: 40 * time.Millisecond, get: 40 * time.Millisecond, skew: 30 * time.Millisecond,
			round: 2500 * time.Millisecond,
		},
		store: func(t *testing.T) objstore.Store {
			s, err := objstore.NewFS(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	})
}
