package snapshot_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// TestRetentionApply: stored policies trim a pchannel by bytes, by age
// (the files' write times), and a vchannel through its trimmer; what is
// held then fits the policy, and GC takes the rest after the grace.
func TestRetentionApply(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	const pch = "rp"
	w := openWriter(t, store, pch, nil)
	defer w.Close(ctx)
	flusher := newFlusher(t, store, pch, nil)
	var acks []sl.Ack
	for round := range 4 {
		acks = append(acks, appendN(t, w, "r", round*10, 10, "va", "vb")...)
		if _, err := flusher.FlushNow(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cp, _, _ := sl.ReadCheckpoint(ctx, store, testLayout, pch)
	total := snapshot.HeldBy(cp, "", sl.MessageID{}).Bytes
	limit := total / 2
	if _, err := snapshot.SetPolicy(ctx, store, testLayout, snapshot.PolicyPChannel, pch, pch, snapshot.Policy{MaxBytes: limit}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var vtrims []sl.MessageID
	newRetention := func(skip time.Duration) *snapshot.Retention {
		return snapshot.NewRetention(snapshot.RetentionConfig{Layout: testLayout, Logger: quietLog, Now: clockAt(skip),
			TrimVChannel: func(_ context.Context, v string, before sl.MessageID) error {
				if v != "va" {
					t.Errorf("trimmed vchannel %s", v)
				}
				vtrims = append(vtrims, before)
				return nil
			}}, store)
	}
	res, err := newRetention(0).Apply(ctx)
	if err != nil || res.Policies != 1 || res.Trimmed != 1 {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	cp, _, _ = sl.ReadCheckpoint(ctx, store, testLayout, pch)
	if h := snapshot.HeldBy(cp, "", sl.MessageID{}); h.Bytes > limit || h.Bytes == 0 || h.Earliest != cp.Trim {
		t.Fatalf("held after a bytes policy of %d (of %d): %+v, trim point %v", limit, total, h, cp.Trim)
	}
	if res, err := newRetention(0).Apply(ctx); err != nil || res.Trimmed != 0 {
		t.Fatalf("apply again: %+v, %v; want nothing to do", res, err)
	}
	checkNoGapNoDup(t, scanAll(t, store, pch, sl.Earliest(), snapshot.NewSegmentReader(store, 0), nil), acksFrom(acks, cp.Trim))

	// A vchannel's age policy: two hours later every file is older.
	if _, err := snapshot.SetPolicy(ctx, store, testLayout, snapshot.PolicyVChannel, "va", pch, snapshot.Policy{MaxAge: time.Hour}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := newRetention(2 * time.Hour).Apply(ctx); err != nil {
		t.Fatal(err)
	}
	last := cp.Segments[len(cp.Segments)-1].LastOffset
	if len(vtrims) != 1 || vtrims[0].Offset <= last-10 {
		t.Fatalf("vchannel trims %v; want one past the newest file of va (offsets up to %d)", vtrims, last)
	}
	if p, err := snapshot.ReadPolicy(ctx, store, testLayout, snapshot.PolicyVChannel, "va"); err != nil || p.MaxAge != time.Hour {
		t.Fatalf("read policy: %+v, %v", p, err)
	}
	if _, err := snapshot.SetPolicy(ctx, store, testLayout, snapshot.PolicyPChannel, pch, pch, snapshot.Policy{MaxAge: -1}, time.Now()); err == nil {
		t.Fatal("a negative max age was stored")
	}
}

// acksFrom returns the acks at or above the trim point.
func acksFrom(acks []sl.Ack, trim sl.MessageID) []sl.Ack {
	for i, a := range acks {
		if !a.ID.Less(trim) {
			return acks[i:]
		}
	}
	return nil
}
