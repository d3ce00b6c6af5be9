package api

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/cas"
	"github.com/cairnlog/cairn/segmentlog"
)

func (ts *testServer) beginTxn(vchannel, keepalive string) wire.TxnOut {
	ts.t.Helper()
	var tx wire.TxnOut
	mustOK(ts.t.(*testing.T), "begin", ts.postJSON("/v1/vchannels/"+vchannel+"/txns", wire.TxnBeginRequest{Keepalive: keepalive}), &tx)
	return tx
}

// TestTxnRoutes: a transaction's messages appear all at once at commit; a
// retried commit gets the commit's ack again; rollback writes nothing.
func TestTxnRoutes(t *testing.T) {
	cfg := testConfig(t)
	var skew atomic.Int64 // the server's clock runs this far ahead
	cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	ts := newTestServer(t, cfg, objstore.NewMemory())
	ts.createVChannel("v0", "p0")

	tx := ts.beginTxn("v0", "")
	if tx.PChannel != "p0" || tx.VChannel != "v0" || tx.Term == 0 || tx.Keepalive != "1m0s" || !strings.HasPrefix(tx.Txn, "p0:v0:") {
		t.Fatalf("begin %+v", tx)
	}
	var ta wire.TxnAppendResponse
	mustOK(t, "txn append", ts.postJSON("/v1/txns/"+tx.Txn+"/append", msgs("", "t1", "t2")), &ta)
	if ta.Appended != 2 || ta.Txn != tx.Txn {
		t.Fatalf("txn append %+v", ta)
	}
	mustOK(t, "txn append 3", ts.postJSON("/v1/txns/"+tx.Txn+"/append", msgs("v0", "t3")), nil)
	var rr wire.ReadResponse
	mustOK(t, "read before commit", ts.get("/v1/vchannels/v0/messages"), &rr)
	if len(rr.Messages) != 0 {
		t.Fatalf("read before commit: %q", payloads(rr.Messages))
	}

	var cr wire.TxnCommitResponse
	mustOK(t, "commit", ts.postJSON("/v1/txns/"+tx.Txn+"/commit", struct{}{}), &cr)
	if len(cr.Acks) != 4 || cr.PChannel != "p0" || cr.Acks[0].Offset != cr.Acks[3].Offset {
		t.Fatalf("commit %+v: want 3 message acks and the commit's, in one batch", cr)
	}
	mustOK(t, "read after commit", ts.get("/v1/vchannels/v0/messages"), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"t1", "t2", "t3"}) {
		t.Fatalf("read after commit %q", got)
	}
	var again wire.TxnCommitResponse
	mustOK(t, "commit again", ts.do("POST", "/v1/txns/"+tx.Txn+"/commit", "", nil), &again)
	if len(again.Acks) != 1 || !again.Acks[0].Duplicate || again.Acks[0] != (wire.Ack{Offset: cr.Acks[3].Offset, Index: cr.Acks[3].Index, TimeTick: cr.Acks[3].TimeTick, Duplicate: true}) {
		t.Fatalf("commit again %+v, want the commit's ack %+v marked duplicate", again, cr.Acks[3])
	}
	reserved := msgs("", "x")
	reserved.Messages[0].Properties = map[string]string{"cairn.broadcast.deadline": "1"}
	wantError(t, "reserved property", ts.postJSON("/v1/txns/"+ts.beginTxn("v0", "30s").Txn+"/append", reserved), 400, wire.CodeInvalid)
	wantError(t, "append after commit", ts.postJSON("/v1/txns/"+tx.Txn+"/append", msgs("", "late")), 404, wire.CodeUnknownTxn)

	rb := ts.beginTxn("v0", "30s")
	mustOK(t, "rb append", ts.postJSON("/v1/txns/"+rb.Txn+"/append", msgs("", "never")), nil)
	if r := ts.do("POST", "/v1/txns/"+rb.Txn+"/rollback", "", nil); r.status != 204 {
		t.Fatalf("rollback: %d %s", r.status, r.body)
	}
	wantError(t, "rollback again", ts.do("POST", "/v1/txns/"+rb.Txn+"/rollback", "", nil), 404, wire.CodeUnknownTxn)
	wantError(t, "commit rolled back", ts.do("POST", "/v1/txns/"+rb.Txn+"/commit", "", nil), 404, wire.CodeUnknownTxn)
	mustOK(t, "read after rollback", ts.get("/v1/vchannels/v0/messages"), &rr)
	if len(rr.Messages) != 3 {
		t.Fatalf("read after rollback %q", payloads(rr.Messages))
	}

	// Expiry.
	ex := ts.beginTxn("v0", "20ms")
	skew.Add(int64(50 * time.Millisecond)) // the keepalive lapses on the server's clock
	wantError(t, "append to expired", ts.postJSON("/v1/txns/"+ex.Txn+"/append", msgs("", "x")), 409, wire.CodeTxnExpired)

	// A handle of another term finds nothing (and opens no writer).
	wantError(t, "other term", ts.do("POST", "/v1/txns/p0:v0:"+"85899345921/append", wire.ContentTypeJSON, []byte(`{"messages":[{"payload":"eA=="}]}`)), 404, wire.CodeUnknownTxn)

	// Refusals.
	wantError(t, "bad handle", ts.do("POST", "/v1/txns/garbage/commit", "", nil), 400, wire.CodeMalformed)
	wantError(t, "handle with a bad name", ts.do("POST", "/v1/txns/p0:-v:1/commit", "", nil), 400, wire.CodeMalformed)
	wantError(t, "keepalive too long", ts.postJSON("/v1/vchannels/v0/txns", wire.TxnBeginRequest{Keepalive: "1h"}), 400, wire.CodeInvalid)
	wantError(t, "keepalive not a duration", ts.postJSON("/v1/vchannels/v0/txns", wire.TxnBeginRequest{Keepalive: "soon"}), 400, wire.CodeInvalid)
	wantError(t, "begin on unknown", ts.postJSON("/v1/vchannels/nope/txns", wire.TxnBeginRequest{}), 404, wire.CodeUnknownVChannel)
	tx2 := ts.beginTxn("v0", "")
	wantError(t, "other vchannel", ts.postJSON("/v1/txns/"+tx2.Txn+"/append", msgs("v1", "x")), 400, wire.CodeInvalid)
	keyed := wire.AppendRequest{Messages: []wire.MessageIn{{Payload: []byte("k"), Key: &wire.Key{Producer: "p", Seq: 1}}}}
	wantError(t, "keyed message", ts.postJSON("/v1/txns/"+tx2.Txn+"/append", keyed), 400, wire.CodeInvalid)
	wantError(t, "commit with a body", ts.do("POST", "/v1/txns/"+tx2.Txn+"/commit", wire.ContentTypeJSON, []byte(`{"x":1}`)), 400, wire.CodeMalformed)
}

// TestTxnRoutesShared: in shared write mode (Lambda) a transaction begun
// on one node is appended to and committed on others — each a process of
// its own over one bucket — and written as one batch; a retried commit
// elsewhere is a duplicate; a rollback anywhere ends it everywhere; the
// maintenance round collects the records once their retention passed.
func TestTxnRoutesShared(t *testing.T) {
	store := objstore.NewMemory()
	var nodes []*testServer
	for i := range 3 {
		cfg := testConfig(t)
		cfg.WriteMode = system.WriteShared
		cfg.Holder = fmt.Sprintf("env-%d", i)
		nodes = append(nodes, newTestServer(t, cfg, store))
	}
	nodes[0].createVChannel("v0", "p0")

	tx := nodes[0].beginTxn("v0", "")
	if tx.PChannel != "p0" || !strings.HasPrefix(tx.Txn, "p0:v0:") || tx.Keepalive != "1m0s" {
		t.Fatalf("begin %+v", tx)
	}
	mustOK(t, "append on node 1", nodes[1].postJSON("/v1/txns/"+tx.Txn+"/append", msgs("", "t1", "t2")), nil)
	mustOK(t, "plain append on node 2", nodes[2].postJSON("/v1/vchannels/v0/append", msgs("", "plain")), nil)
	mustOK(t, "append on node 2", nodes[2].postJSON("/v1/txns/"+tx.Txn+"/append", msgs("v0", "t3")), nil)
	wantError(t, "other vchannel", nodes[0].postJSON("/v1/txns/"+tx.Txn+"/append", msgs("v1", "x")), 400, wire.CodeInvalid)
	var rr wire.ReadResponse
	mustOK(t, "read before commit", nodes[0].get("/v1/vchannels/v0/messages"), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"plain"}) {
		t.Fatalf("read before commit: %q", got)
	}
	var cr wire.TxnCommitResponse
	mustOK(t, "commit on node 0", nodes[0].postJSON("/v1/txns/"+tx.Txn+"/commit", struct{}{}), &cr)
	if len(cr.Acks) != 4 || cr.Acks[0].Offset != cr.Acks[3].Offset || cr.Acks[3].Duplicate {
		t.Fatalf("commit %+v: want 3 message acks and the commit's, in one batch", cr)
	}
	mustOK(t, "read after commit", nodes[1].get("/v1/vchannels/v0/messages"), &rr)
	if got := payloads(rr.Messages); !slices.Equal(got, []string{"plain", "t1", "t2", "t3"}) {
		t.Fatalf("read after commit %q", got)
	}
	var again wire.TxnCommitResponse
	mustOK(t, "commit again on node 2", nodes[2].do("POST", "/v1/txns/"+tx.Txn+"/commit", "", nil), &again)
	if len(again.Acks) != 1 || again.Acks[0] != (wire.Ack{Offset: cr.Acks[3].Offset, Index: cr.Acks[3].Index, TimeTick: cr.Acks[3].TimeTick, Duplicate: true}) {
		t.Fatalf("commit again %+v, want the commit's ack %+v marked duplicate", again, cr.Acks[3])
	}
	wantError(t, "append after commit", nodes[1].postJSON("/v1/txns/"+tx.Txn+"/append", msgs("", "late")), 404, wire.CodeUnknownTxn)

	rb := nodes[1].beginTxn("v0", "30s")
	mustOK(t, "rb append", nodes[2].postJSON("/v1/txns/"+rb.Txn+"/append", msgs("", "never")), nil)
	if r := nodes[0].do("POST", "/v1/txns/"+rb.Txn+"/rollback", "", nil); r.status != 204 {
		t.Fatalf("rollback: %d %s", r.status, r.body)
	}
	wantError(t, "commit rolled back", nodes[2].do("POST", "/v1/txns/"+rb.Txn+"/commit", "", nil), 404, wire.CodeUnknownTxn)
	wantError(t, "append to rolled back", nodes[1].postJSON("/v1/txns/"+rb.Txn+"/append", msgs("", "x")), 404, wire.CodeUnknownTxn)
	wantError(t, "unknown handle", nodes[1].do("POST", "/v1/txns/p0:v0:85899345921/commit", "", nil), 404, wire.CodeUnknownTxn)

	later := testConfig(t)
	later.Now = func() time.Time { return time.Now().Add(segmentlog.TxnRetention + time.Minute) }
	m, err := system.New(later.Config, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RunMaintenance(t.Context()); err != nil {
		t.Fatalf("maintenance round: %v", err)
	}
	left := 0
	if err := store.List(t.Context(), segmentlog.Layout{}.TxnPrefix(), "", func(objstore.Attrs) error { left++; return nil }); err != nil || left != 0 {
		t.Fatalf("transaction records after the maintenance round: %d (%v), want none", left, err)
	}
	mustOK(t, "commit retried after collection", nodes[1].do("POST", "/v1/txns/"+tx.Txn+"/commit", "", nil), &again)
	if len(again.Acks) != 1 || again.Acks[0].Offset != cr.Acks[3].Offset || !again.Acks[0].Duplicate {
		t.Fatalf("commit retried after collection %+v, want the commit's ack from the idempotency window", again)
	}
}

// A call refused because a commit sealed the transaction answers 409
// wrong_state, a commit that lost every race for the tail 503 unavailable
// (unless its outcome is unknown); other errors keep their own mapping.
func TestSharedTxnErrorMapping(t *testing.T) {
	if e := classify(fmt.Errorf("txn: %w", segmentlog.ErrTxnSealed)); e.status != 409 || e.Code != wire.CodeWrongState {
		t.Fatalf("sealed: %+v, want 409 %s", e, wire.CodeWrongState)
	}
	if e := classify(fmt.Errorf("commit: %w", segmentlog.ErrContended)); e.status != 503 || e.Code != wire.CodeUnavailable || e.retryAfter <= 0 {
		t.Fatalf("contended: %+v, want 503 %s with Retry-After", e, wire.CodeUnavailable)
	}
	if e := classify(fmt.Errorf("commit: %w: %w", segmentlog.ErrOutcomeUnknown, segmentlog.ErrContended)); e.Code != wire.CodeOutcomeUnknown {
		t.Fatalf("contended with an unknown outcome: %+v, want %s", e, wire.CodeOutcomeUnknown)
	}
	// A coordinator or snapshot record's CAS that stopped with a write in
	// flight: 503, as an append's unknown outcome, not a 500.
	if e := classify(fmt.Errorf("create vchannel v: %w (%w: an earlier write may still land)", context.DeadlineExceeded, cas.ErrOutcomeUnknown)); e.status != 503 || e.Code != wire.CodeOutcomeUnknown || e.retryAfter <= 0 {
		t.Fatalf("record write of unknown outcome: %+v, want 503 %s with Retry-After", e, wire.CodeOutcomeUnknown)
	}
	if e := classify(fmt.Errorf("txn p0:v0:1: %w", segmentlog.ErrTxnNotFound)); e.status != 404 || e.Code != wire.CodeUnknownTxn {
		t.Fatalf("not found: %+v, want 404 %s", e, wire.CodeUnknownTxn)
	}
}
