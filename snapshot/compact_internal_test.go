package snapshot

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

var planLayout = segmentlog.Layout{Prefix: "t"}

// ref is a manifest reference of vchannel v over offsets first..last,
// written by flush id, of n bytes.
func ref(v string, first, last uint64, id string, n int64) segmentlog.SegmentRef {
	return segmentlog.SegmentRef{VChannel: v, Key: SegmentKey(planLayout, "p", v, first, last, id), FirstOffset: first, LastOffset: last, Messages: 1, Bytes: n}
}

// runKeys names each run by the offsets it spans, as "v:first-last/files".
func runKeys(runs [][]segmentlog.SegmentRef) []string {
	var out []string
	for _, r := range runs {
		out = append(out, fmt.Sprintf("%s:%d-%d/%d", r[0].VChannel, r[0].FirstOffset, r[len(r)-1].LastOffset, len(r)))
	}
	return out
}

func TestPlanRuns(t *testing.T) {
	// Four equal files per vchannel, interleaved as flush rounds write
	// them; flush f4 is the checkpoint's current one.
	var flushed []segmentlog.SegmentRef
	for i := uint64(0); i < 5; i++ {
		flushed = append(flushed, ref("va", 10*i, 10*i+4, fmt.Sprintf("f%d", i), 100), ref("vb", 10*i+5, 10*i+9, fmt.Sprintf("f%d", i), 100))
	}
	tests := []struct {
		name     string
		segments []segmentlog.SegmentRef
		flushID  string
		target   int64
		minFiles int
		maxRuns  int
		want     []string
	}{
		{name: "one run per vchannel, the current flush left out", segments: flushed, flushID: "f4", target: 1 << 20, minFiles: 3, maxRuns: 16,
			want: []string{"va:0-34/4", "vb:5-39/4"}},
		{name: "too few files", segments: flushed, flushID: "f4", target: 1 << 20, minFiles: 5, maxRuns: 16},
		{name: "target splits runs", segments: flushed, flushID: "f4", target: 200, minFiles: 2, maxRuns: 16,
			want: []string{"va:0-14/2", "va:20-34/2", "vb:5-19/2", "vb:25-39/2"}},
		{name: "max runs", segments: flushed, flushID: "f4", target: 200, minFiles: 2, maxRuns: 1,
			want: []string{"va:0-14/2"}},
		{name: "size-tiered: a big file waits for enough small ones", flushID: "f9", target: 1 << 20, minFiles: 2, maxRuns: 16,
			segments: []segmentlog.SegmentRef{ref("va", 0, 9, "c0", 400), ref("va", 10, 10, "f1", 100), ref("va", 11, 11, "f2", 100), ref("va", 12, 12, "f3", 100)},
			want:     []string{"va:10-12/3"}},
		{name: "size-tiered: enough small ones", flushID: "f9", target: 1 << 20, minFiles: 2, maxRuns: 16,
			segments: []segmentlog.SegmentRef{ref("va", 0, 9, "c0", 300), ref("va", 10, 10, "f1", 100), ref("va", 11, 11, "f2", 100), ref("va", 12, 12, "f3", 100)},
			want:     []string{"va:0-12/4"}},
		{name: "a foreign file ends a run", flushID: "f9", target: 1 << 20, minFiles: 2, maxRuns: 16,
			segments: []segmentlog.SegmentRef{ref("va", 0, 0, "f0", 100), ref("va", 1, 1, "f1", 100),
				{VChannel: "va", Key: "t/segments/vz/00000000000000000002-00000000000000000002-r.arrow", FirstOffset: 2, LastOffset: 2, Messages: 1, Bytes: 100},
				ref("va", 3, 3, "f3", 100)},
			want: []string{"va:0-1/2"}},
		{name: "overlapping files are never merged", flushID: "f9", target: 1 << 20, minFiles: 2, maxRuns: 16,
			segments: []segmentlog.SegmentRef{ref("va", 0, 5, "f0", 100), ref("va", 5, 6, "f1", 100)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp := segmentlog.Checkpoint{PChannel: "p", Segments: tt.segments, FlushID: tt.flushID}
			got := runKeys(planRuns(cp, planLayout, tt.target, tt.minFiles, 1024, tt.maxRuns))
			if !slices.Equal(got, tt.want) {
				t.Errorf("runs %v, want %v", got, tt.want)
			}
		})
	}
}

// TestApplyMerges: the merged file takes the run's place (the run goes to
// its retired list, not to the record), other vchannels' references keep
// their order, and nothing but the manifest, Version and UpdatedAt
// changes: an older compactor's inline Retired entries stay for GC. A merge whose files
// are not all named any more, or that is applied already, is not
// applicable.
func TestApplyMerges(t *testing.T) {
	a0, b0, a1, b1, a2 := ref("va", 0, 0, "f0", 1), ref("vb", 1, 1, "f0", 1), ref("va", 2, 2, "f1", 1), ref("vb", 3, 3, "f1", 1), ref("va", 4, 4, "f2", 1)
	old := []segmentlog.RetiredSegment{{Key: ref("va", 0, 0, "old", 1).Key, RetiredAt: time.Date(2026, 11, 22, 0, 30, 0, 0, time.UTC)}}
	cur := segmentlog.Checkpoint{Format: 1, PChannel: "p", C: 5, MaxTerm: 3, LastTimeTick: 9, FlushID: "f2", Version: 7,
		TermChanges: []segmentlog.TermChange{{Offset: 0, Term: 3}}, Segments: []segmentlog.SegmentRef{a0, b0, a1, b1, a2}, Retired: old}
	merged := ref("va", 0, 2, "c1", 2)
	m := Merge{Merged: merged, Replaced: []segmentlog.SegmentRef{a0, a1}}
	if got := applicable(cur, []Merge{m}); len(got) != 1 {
		t.Fatalf("applicable: %v", got)
	}
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	next := applyMerges(cur, []Merge{m}, now)
	if want := []segmentlog.SegmentRef{merged, b0, b1, a2}; !slices.Equal(next.Segments, want) {
		t.Errorf("manifest %v, want %v", next.Segments, want)
	}
	if !slices.Equal(next.Retired, old) {
		t.Errorf("retired %v, want the inline entries as they were, %v", next.Retired, old)
	}
	if next.C != cur.C || next.MaxTerm != cur.MaxTerm || next.LastTimeTick != cur.LastTimeTick || next.FlushID != cur.FlushID ||
		!slices.Equal(next.TermChanges, cur.TermChanges) || next.Version != cur.Version+1 || !next.UpdatedAt.Equal(now) {
		t.Errorf("applyMerges changed more than the manifest: %+v → %+v", cur, next)
	}
	if got := applicable(next, []Merge{m}); len(got) != 0 {
		t.Errorf("a merge already applied is applicable again: %v", got)
	}
	gone := cur
	gone.Segments = []segmentlog.SegmentRef{b0, a1, b1, a2} // a0 reclaimed or merged by another compactor
	if got := applicable(gone, []Merge{m}); len(got) != 0 {
		t.Errorf("a merge missing a file is applicable: %v", got)
	}
}

// TestHoldsFlushRetired: a flusher whose CAS reply was lost recognises its
// round after compaction merged its files away, through a record's inline
// Retired list (written before retired lists).
func TestHoldsFlushRetired(t *testing.T) {
	mine := ref("va", 0, 0, "mine", 1)
	cp := segmentlog.Checkpoint{FlushID: "later", Segments: []segmentlog.SegmentRef{ref("va", 0, 1, "c1", 2)},
		Retired: []segmentlog.RetiredSegment{{Key: mine.Key}}}
	if !holdsFlush(cp, "mine", segmentlog.Checkpoint{}, true) {
		t.Error("holdsFlush misses a round whose files compaction retired")
	}
	if holdsFlush(cp, "other", segmentlog.Checkpoint{}, true) {
		t.Error("holdsFlush finds a round that never landed")
	}
}

// TestRetiredHoldsFlush: a flusher whose CAS reply was lost recognises its
// round after compaction merged its files away, through the merge's
// retired list, written since the round began; a list written before
// (beyond the skew allowed) or naming other flushes' files does not count.
func TestRetiredHoldsFlush(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	l := segmentlog.Layout{Prefix: "t"}
	mine := ref("va", 0, 0, "mine", 1)
	if _, err := writeRetiredList(ctx, store, l, "p", []string{ref("va", 1, 1, "other", 1).Key, mine.Key}, time.Now(), "c1-0", time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Minute)
	if !retiredHoldsFlush(ctx, store, l, "p", "mine", start, time.Second) {
		t.Error("a round whose files a retired list names is not recognised")
	}
	if retiredHoldsFlush(ctx, store, l, "p", "lost", start, time.Second) {
		t.Error("a round no list names is recognised")
	}
	if retiredHoldsFlush(ctx, store, l, "q", "mine", start, time.Second) {
		t.Error("another pchannel's list is read")
	}
	if retiredHoldsFlush(ctx, store, l, "p", "mine", time.Now().Add(retiredSkew+time.Minute), time.Second) {
		t.Error("a list written before the round began is read")
	}
}
