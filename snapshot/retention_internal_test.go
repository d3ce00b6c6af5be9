package snapshot

import (
	"testing"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

func TestRetentionPoint(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ref := func(key string, first, last uint64, bytes int64) segmentlog.SegmentRef {
		return segmentlog.SegmentRef{Key: key, FirstOffset: first, LastOffset: last, Bytes: bytes}
	}
	refs := []segmentlog.SegmentRef{ref("a", 0, 9, 100), ref("b", 10, 19, 100), ref("c", 20, 29, 100)}
	written := map[string]time.Time{"a": now.Add(-3 * time.Hour), "b": now.Add(-90 * time.Minute), "c": now.Add(-time.Minute)}
	tests := []struct {
		name   string
		p      Policy
		want   uint64
		wantOK bool
	}{
		{"no policy", Policy{}, 0, false},
		{"age: the two files older than an hour", Policy{MaxAge: time.Hour}, 20, true},
		{"age: one file older than two hours", Policy{MaxAge: 2 * time.Hour}, 10, true},
		{"age: nothing that old", Policy{MaxAge: 4 * time.Hour}, 0, false},
		{"bytes: the newest two fit", Policy{MaxBytes: 200}, 10, true},
		{"bytes: only the newest fits", Policy{MaxBytes: 150}, 20, true},
		{"bytes: all fit", Policy{MaxBytes: 300}, 0, false},
		{"both: the stricter wins", Policy{MaxAge: 2 * time.Hour, MaxBytes: 150}, 20, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := retentionPoint(refs, written, tc.p, now)
			if ok != tc.wantOK || got != (segmentlog.MessageID{Offset: tc.want}) {
				t.Fatalf("got %v %v, want %d %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
