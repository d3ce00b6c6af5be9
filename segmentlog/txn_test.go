package segmentlog_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
)

func TestTxnCommitInterleaved(t *testing.T) {
	onStores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		w := openWriter(t, store, "p1", nil)
		defer w.Close(ctx)
		id, err := w.BeginTxn(ctx, "vt", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AppendTxn(ctx, id, dataMsg("vt", "t1"), dataMsg("vt", "t2")); err != nil {
			t.Fatal(err)
		}
		// Plain appends on the same and another vchannel meanwhile.
		w.Append(ctx, dataMsg("vt", "plain-same"))
		w.Append(ctx, dataMsg("vo", "plain-other"))
		if err := w.AppendTxn(ctx, id, dataMsg("vt", "t3")); err != nil {
			t.Fatal(err)
		}
		if err := w.AppendTxn(ctx, id, dataMsg("vo", "wrong")); !errors.Is(err, sl.ErrTxnInvalid) {
			t.Fatalf("txn message for another vchannel: %v, want ErrTxnInvalid", err)
		}
		acks, err := w.CommitTxn(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(acks) != 4 {
			t.Fatalf("commit acks %d, want 3 bodies + commit", len(acks))
		}
		again, err := w.CommitTxn(ctx, id)
		if err != nil || again[0].ID != acks[3].ID {
			t.Fatalf("retried commit: %v %+v, want the commit %v", err, again, acks[3].ID)
		}
		got := scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second)
		var payloads []string
		for _, d := range got {
			payloads = append(payloads, string(d.Payload))
		}
		want := []string{"plain-same", "plain-other", "t1", "t2", "t3"}
		if len(payloads) != len(want) {
			t.Fatalf("delivered %q, want %q", payloads, want)
		}
		for i := range want {
			if payloads[i] != want[i] {
				t.Fatalf("delivered %q, want %q: a transaction is delivered together, at its commit", payloads, want)
			}
		}
		if got[2].TxnID != id || got[4].TimeTick >= acks[3].TimeTick || got[2].ID != acks[0].ID {
			t.Fatalf("txn delivery %+v does not match its commit acks %+v", got[2], acks)
		}
	})
}

func TestTxnRollbackExpiryAndFailover(t *testing.T) {
	onStores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		// The real clock plus a skip, which the test moves past a
		// keepalive. (A clock that stood still hung the writer's recovery on
		// a slow MinIO: its lease deadline, read from this clock, turned
		// into a real deadline that had passed, and its retry limit, read
		// from this clock, never came.)
		var skip atomic.Int64
		clock := func() time.Time { return time.Now().Add(time.Duration(skip.Load())) }
		w := openWriter(t, store, "p1", nil)

		rb, _ := w.BeginTxn(ctx, "v", time.Minute)
		w.AppendTxn(ctx, rb, dataMsg("v", "rolled-back"))
		if err := w.RollbackTxn(ctx, rb); err != nil {
			t.Fatal(err)
		}
		if _, err := w.CommitTxn(ctx, rb); !errors.Is(err, sl.ErrTxnNotFound) {
			t.Fatalf("commit after rollback: %v, want ErrTxnNotFound", err)
		}
		committed, _ := w.BeginTxn(ctx, "v", time.Minute)
		w.AppendTxn(ctx, committed, dataMsg("v", "committed"))
		cacks, err := w.CommitTxn(ctx, committed)
		if err != nil {
			t.Fatal(err)
		}
		open, _ := w.BeginTxn(ctx, "v", time.Minute)
		w.AppendTxn(ctx, open, dataMsg("v", "open-at-failover"))
		w.Close(ctx)

		// The next holder: the open transaction is gone (aborted by the
		// failover); the committed one keeps its answer.
		w2 := openWriter(t, store, "p1", func(c *sl.WriterConfig) { c.Now = clock })
		defer w2.Close(ctx)
		if _, err := w2.CommitTxn(ctx, open); !errors.Is(err, sl.ErrTxnNotFound) {
			t.Fatalf("commit of a txn open at failover: %v, want ErrTxnNotFound", err)
		}
		again, err := w2.CommitTxn(ctx, committed)
		if err != nil || again[0].ID != cacks[len(cacks)-1].ID {
			t.Fatalf("commit retried on the next term: %v %+v, want committed at %v", err, again, cacks[len(cacks)-1].ID)
		}

		exp, _ := w2.BeginTxn(ctx, "v", time.Second)
		w2.AppendTxn(ctx, exp, dataMsg("v", "expired"))
		skip.Add(int64(2 * time.Second))
		if _, err := w2.CommitTxn(ctx, exp); !errors.Is(err, sl.ErrTxnExpired) {
			t.Fatalf("commit after the keepalive lapsed: %v, want ErrTxnExpired", err)
		}
		got := scanAll(t, store, testLayout, "p1", sl.Earliest(), time.Second)
		if len(got) != 1 || string(got[0].Payload) != "committed" {
			t.Fatalf("delivered %d messages (%+v), want only the committed one", len(got), got)
		}
	})
}
