package snapshot_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/snapshot"
)

// TestCheckpointSizeBounded: the checkpoint record stays small whatever
// the flush rate (docs/protocol.md, "Checkpoint record"). Four vchannels
// are flushed 320 times and compacted every 8 rounds, and no retirement
// grace ends meanwhile (the worst case: every file compaction took out of
// the manifest is still protected). Apart from the manifest, which
// compaction keeps within its size-tiered bound, the record does not grow
// with the rounds: the retired files are in retired lists of their own.
func TestCheckpointSizeBounded(t *testing.T) {
	store := objstore.NewMemory()
	ctx := context.Background()
	const pch, rounds, minFiles = "small", 320, 8
	vs := []string{"va", "vb", "vc", "vd"}
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	f := newFlusher(t, store, pch, nil)
	c := newCompactor(t, store, pch, func(c *snapshot.CompactConfig) { c.MinFiles = minFiles })
	maxBytes, maxRest, maxRefs, half := 0, 0, 0, 0
	for r := 0; r < rounds; r += 8 {
		flushedRounds(t, store, w, f, 8, len(vs), vs...)
		compactAll(t, c)
		cp, n := checkpointSize(t, store, pch)
		segs, err := json.Marshal(cp.Segments)
		if err != nil {
			t.Fatal(err)
		}
		maxBytes, maxRest, maxRefs = max(maxBytes, n), max(maxRest, n-len(segs)), max(maxRefs, len(cp.Segments))
		if r+8 == rounds/2 {
			half = n
		}
	}
	cp, n := checkpointSize(t, store, pch)
	t.Logf("%d flush rounds over %d vchannels, compacted every 8, no grace over: checkpoint %d bytes after %d rounds, %d after %d (at most %d; at most %d besides the manifest of at most %d refs); %d retired entries inline",
		rounds, len(vs), half, rounds/2, n, rounds, maxBytes, maxRest, maxRefs, len(cp.Retired))
	if len(cp.Retired) != 0 {
		t.Errorf("the checkpoint lists %d retired files inline", len(cp.Retired))
	}
	if maxRest > 1024 {
		t.Errorf("the checkpoint reached %d bytes besides its manifest: it grows with the rounds", maxRest)
	}
	// Size-tiered: under 2·MinFiles files per tier and vchannel, and the
	// tiers of 320 equal files number at most 6; a reference takes under
	// 200 bytes.
	if bound := len(vs)*2*minFiles*6*200 + 1024; maxBytes > bound {
		t.Errorf("the checkpoint reached %d bytes, above the bound %d", maxBytes, bound)
	}
}
