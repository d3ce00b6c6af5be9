package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

func TestAppendAndRead(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())

	first := ts.mustAppend("p0", wire.AppendRequest{Messages: []wire.MessageIn{
		{VChannel: "v0", Type: "insert", Payload: []byte("one"), Properties: map[string]string{"k": "v"},
			Key: &wire.Key{Producer: "prod", Epoch: 1, Seq: 1}},
		{VChannel: "v1", Payload: []byte("two")},
	}})
	if first.Term == 0 || first.Acks[0].Offset != first.Acks[1].Offset || first.Acks[1].Index != 1 {
		t.Fatalf("acks of one append: %+v", first)
	}
	if first.Acks[0].TimeTick == 0 || first.Acks[1].TimeTick <= first.Acks[0].TimeTick {
		t.Fatalf("timeticks not increasing: %+v", first.Acks)
	}
	second := ts.mustAppend("p0", msgs("v0", "three"))
	if second.Acks[0].Offset != first.Acks[0].Offset+1 {
		t.Fatalf("second batch at %d, first at %d", second.Acks[0].Offset, first.Acks[0].Offset)
	}

	// A retry with the same key is a duplicate with the first copy's ID.
	dup := ts.mustAppend("p0", wire.AppendRequest{Messages: []wire.MessageIn{{VChannel: "v0", Type: "insert", Payload: []byte("one"),
		Key: &wire.Key{Producer: "prod", Epoch: 1, Seq: 1}}}})
	if !dup.Acks[0].Duplicate || dup.Acks[0].Offset != first.Acks[0].Offset || dup.Acks[0].TimeTick != first.Acks[0].TimeTick {
		t.Fatalf("duplicate ack %+v, first %+v", dup.Acks[0], first.Acks[0])
	}

	all := ts.mustRead("/v1/pchannels/p0/messages?from=earliest")
	if len(all.Messages) != 3 {
		t.Fatalf("read %d messages, want 3: %+v", len(all.Messages), all)
	}
	m := all.Messages[0]
	if m.Type != "insert" || m.VChannel != "v0" || string(m.Payload) != "one" || m.Properties["k"] != "v" ||
		m.Key == nil || *m.Key != (wire.Key{Producer: "prod", Epoch: 1, Seq: 1}) || m.TimeTick != first.Acks[0].TimeTick || m.Term != first.Term {
		t.Fatalf("first message %+v", m)
	}
	if want := fmt.Sprintf("id:%d.1", second.Acks[0].Offset); all.Next != want {
		t.Fatalf("next %q, want %q", all.Next, want)
	}
	// Filters and resume.
	v1 := ts.mustRead("/v1/pchannels/p0/messages?from=earliest&vchannel=v1")
	if len(v1.Messages) != 1 || string(v1.Messages[0].Payload) != "two" {
		t.Fatalf("vchannel filter: %+v", v1)
	}
	page := ts.mustRead("/v1/pchannels/p0/messages?from=earliest&max=2")
	if len(page.Messages) != 2 {
		t.Fatalf("max=2 read %d", len(page.Messages))
	}
	rest := ts.mustRead("/v1/pchannels/p0/messages?from=" + page.Next)
	if len(rest.Messages) != 1 || string(rest.Messages[0].Payload) != "three" {
		t.Fatalf("resume from %s: %+v", page.Next, rest)
	}
	byTick := ts.mustRead("/v1/pchannels/p0/messages?from=timetick:" + strconv.FormatUint(second.Acks[0].TimeTick, 10))
	if len(byTick.Messages) != 1 || string(byTick.Messages[0].Payload) != "three" {
		t.Fatalf("from timetick: %+v", byTick)
	}

	var tail wire.TailResponse
	ts.get("/v1/pchannels/p0/tail").decode(t, &tail)
	if tail.NextOffset != second.Acks[0].Offset+1 || tail.Source != "writer" || tail.Term != first.Term {
		t.Fatalf("tail %+v", tail)
	}
	var sync wire.SyncResponse
	r := ts.do("POST", "/v1/pchannels/p0/sync", "", nil)
	r.decode(t, &sync)
	if r.status != http.StatusOK || sync.TimeTick <= second.Acks[0].TimeTick {
		t.Fatalf("sync %d %+v", r.status, sync)
	}
	after := ts.mustAppend("p0", msgs("v0", "four"))
	if after.Acks[0].TimeTick <= sync.TimeTick {
		t.Fatalf("append after sync got tick %d ≤ %d", after.Acks[0].TimeTick, sync.TimeTick)
	}
}

func TestBinaryBatchAppend(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	b := segmentlog.Batch{Kind: segmentlog.KindData, Term: 99, Offset: 12345, Messages: []segmentlog.Message{
		{Type: segmentlog.TypeDelete, VChannel: "v0", TimeTick: 1, Payload: []byte("bin-1")},
		{Type: segmentlog.TypeData, VChannel: "v0", TimeTick: 2, Payload: []byte("bin-2"), Properties: map[string]string{"a": "b"}},
	}}
	body, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	r := ts.do("POST", "/v1/pchannels/p2/append", wire.ContentTypeBatch, body)
	if r.status != http.StatusOK {
		t.Fatalf("binary append: %d %s", r.status, r.body)
	}
	var ar wire.AppendResponse
	r.decode(t, &ar)
	if ar.Term == 99 || len(ar.Acks) != 2 || ar.Acks[0].Offset == 12345 || ar.Acks[0].TimeTick <= 2 {
		t.Fatalf("term, offset or ticks of the body were used: %+v", ar)
	}
	got := ts.mustRead("/v1/pchannels/p2/messages?from=earliest")
	if len(got.Messages) != 2 || got.Messages[0].Type != "delete" || got.Messages[1].Properties["a"] != "b" {
		t.Fatalf("read back %+v", got)
	}
}

func TestExpectedOffset(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	first := ts.mustAppend("p0", msgs("v0", "a"))
	next := first.Acks[0].Offset + 1

	req := msgs("v0", "b")
	stale := first.Acks[0].Offset
	req.ExpectedOffset = &stale
	r := ts.postJSON("/v1/pchannels/p0/append", req)
	if r.status != http.StatusPreconditionFailed || r.errorCode(t) != wire.CodeOffsetMismatch {
		t.Fatalf("stale expected_offset: %d %s", r.status, r.body)
	}
	if h := r.header.Get("Cairn-Next-Offset"); h != strconv.FormatUint(next, 10) {
		t.Fatalf("Cairn-Next-Offset %q, want %d", h, next)
	}
	req.ExpectedOffset = &next
	ok := ts.mustAppend("p0", req)
	if ok.Acks[0].Offset != next {
		t.Fatalf("conditional append landed at %d, want %d", ok.Acks[0].Offset, next)
	}
	// The query form, for binary bodies too.
	r = ts.postJSON(fmt.Sprintf("/v1/pchannels/p0/append?expected_offset=%d", next+1), msgs("v0", "c"))
	if r.status != http.StatusOK {
		t.Fatalf("expected_offset in the query: %d %s", r.status, r.body)
	}
	if got := ts.mustRead("/v1/pchannels/p0/messages"); len(got.Messages) != 3 {
		t.Fatalf("read %d messages, want 3 (the 412 wrote nothing)", len(got.Messages))
	}
}

// TestAfterSeq: an append that names a predecessor key is written only
// behind it; before the predecessor is in the log it is 412
// out_of_sequence and writes nothing; it needs keys of one producer and
// epoch and no expected_offset.
func TestAfterSeq(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	keyed := func(seqs ...uint64) wire.AppendRequest {
		req := wire.AppendRequest{}
		for _, s := range seqs {
			req.Messages = append(req.Messages, wire.MessageIn{VChannel: "v0", Payload: fmt.Appendf(nil, "m%d", s), Key: &wire.Key{Producer: "pr", Epoch: 7, Seq: s}})
		}
		return req
	}
	r := ts.postJSON("/v1/pchannels/p0/append?after_seq=1", keyed(2, 3))
	if r.status != http.StatusPreconditionFailed || r.errorCode(t) != wire.CodeOutOfSequence {
		t.Fatalf("batch before its predecessor: %d %s", r.status, r.body)
	}
	ts.mustAppend("p0", keyed(0, 1))
	r = ts.postJSON("/v1/pchannels/p0/append?after_seq=1", keyed(2, 3))
	if r.status != http.StatusOK {
		t.Fatalf("batch behind its predecessor: %d %s", r.status, r.body)
	}
	// A retry of a batch that landed is answered from the dedup window.
	r = ts.postJSON("/v1/pchannels/p0/append?after_seq=1", keyed(2, 3))
	var ar wire.AppendResponse
	r.decode(t, &ar)
	if r.status != http.StatusOK || !ar.Acks[0].Duplicate {
		t.Fatalf("retried batch: %d %s", r.status, r.body)
	}
	got := ts.mustRead("/v1/pchannels/p0/messages")
	if len(got.Messages) != 4 {
		t.Fatalf("read %d messages, want 4 (the 412 wrote nothing)", len(got.Messages))
	}
	for i, m := range got.Messages {
		if m.Key == nil || m.Key.Seq != uint64(i) {
			t.Fatalf("message %d has key %+v", i, m.Key)
		}
	}
	for name, tc := range map[string]struct {
		path string
		req  wire.AppendRequest
		code string
	}{
		"unkeyed":         {"/v1/pchannels/p0/append?after_seq=3", msgs("v0", "x"), wire.CodeInvalid},
		"two producers":   {"/v1/pchannels/p0/append?after_seq=3", wire.AppendRequest{Messages: append(keyed(4).Messages, wire.MessageIn{VChannel: "v0", Key: &wire.Key{Producer: "other", Epoch: 7, Seq: 5}})}, wire.CodeInvalid},
		"expected_offset": {"/v1/pchannels/p0/append?after_seq=3&expected_offset=9", keyed(4), wire.CodeMalformed},
		"not a number":    {"/v1/pchannels/p0/append?after_seq=x", keyed(4), wire.CodeMalformed},
	} {
		if r := ts.postJSON(tc.path, tc.req); r.status != http.StatusBadRequest || r.errorCode(t) != tc.code {
			t.Errorf("%s: %d %s, want 400 %s", name, r.status, r.body, tc.code)
		}
	}
}

func TestLongPoll(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	first := ts.mustAppend("p0", msgs("v0", "a"))

	// latest resolves to the tail: an empty answer names a concrete slot.
	start := time.Now()
	empty := ts.mustRead("/v1/pchannels/p0/messages?from=latest&wait=100ms")
	if len(empty.Messages) != 0 || empty.Next != fmt.Sprintf("id:%d.0", first.Acks[0].Offset+1) {
		t.Fatalf("empty latest read: %+v", empty)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("wait=100ms returned after %v", d)
	}

	done := make(chan wire.ReadResponse, 1)
	go func() { done <- ts.mustRead("/v1/pchannels/p0/messages?from=" + empty.Next + "&wait=10s") }()
	ts.awaitWaiting(1) // else the append could land before the read, which would not wait
	ts.mustAppend("p0", msgs("v0", "b"))
	select {
	case got := <-done:
		if len(got.Messages) != 1 || string(got.Messages[0].Payload) != "b" {
			t.Fatalf("long poll got %+v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("long poll not woken by the append")
	}
}

func TestStatusRoutes(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	ar := ts.mustAppend("p1", msgs("v0", "a"))
	ts.mustAppend("p0", msgs("v0", "a"))

	var lease wire.LeaseOut
	r := ts.get("/v1/pchannels/p1/lease")
	r.decode(t, &lease)
	if r.status != http.StatusOK || lease.PChannel != "p1" || lease.Term != ar.Term || !lease.Live || lease.Holder != "test-"+t.Name() {
		t.Fatalf("lease %d %+v", r.status, lease)
	}
	if strings.Contains(string(r.body), "nonce") {
		t.Fatalf("lease answer shows the nonce: %s", r.body)
	}
	var leases wire.LeasesResponse
	ts.get("/v1/leases").decode(t, &leases)
	if len(leases.Leases) != 2 || leases.Leases[0].PChannel != "p0" {
		t.Fatalf("leases %+v", leases)
	}
	var st wire.StatusResponse
	ts.get("/v1/pchannels").decode(t, &st)
	if len(st.PChannels) != 2 || st.PChannels[1].Tail != ar.Acks[0].Offset+1 || st.PChannels[1].TailSource != "writer" {
		t.Fatalf("status %+v", st)
	}
	if r := ts.get("/v1/pchannels/nope/lease"); r.status != http.StatusNotFound || r.errorCode(t) != wire.CodeUnknownPChannel {
		t.Fatalf("lease of unknown: %d %s", r.status, r.body)
	}
	if r := ts.get("/healthz"); r.status != http.StatusOK {
		t.Fatalf("healthz %d", r.status)
	}
	if r := ts.get("/v1/openapi.yaml"); r.status != http.StatusOK || !strings.HasPrefix(string(r.body), "openapi: 3") {
		t.Fatalf("openapi %d", r.status)
	}
	r = ts.get("/metrics")
	for _, want := range []string{
		`cairn_http_requests_total{code="200",route="POST /v1/pchannels/{p}/append"} 2`,
		`cairn_writer_frontier{pchannel="p1"}`,
		`cairn_store_requests_total{component="writer",op="put_if_absent",result="ok"}`,
		`cairn_store_requests_total{component="lease",op="put_if_absent",result="ok"} 2`,
		`cairn_store_bytes_total{component="writer",op="put_if_absent"}`,
		`cairn_store_request_duration_seconds_count{op="put_if_absent"}`,
		`cairn_append_duration_seconds_count 2`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestStoreTail(t *testing.T) {
	store := objstore.NewMemory()
	a := newTestServer(t, testConfig(t), store)
	var last wire.AppendResponse
	for i := range 5 {
		last = a.mustAppend("p0", msgs("v0", strconv.Itoa(i)))
	}
	// Another server, without the writer, finds the tail in the store.
	b := newTestServer(t, testConfig(t), store)
	var tail wire.TailResponse
	b.get("/v1/pchannels/p0/tail").decode(t, &tail)
	if tail.Source != "store" || tail.NextOffset != last.Acks[0].Offset+1 {
		t.Fatalf("store tail %+v, want %d", tail, last.Acks[0].Offset+1)
	}
	got := b.mustRead("/v1/pchannels/p0/messages?from=earliest")
	if len(got.Messages) != 5 {
		t.Fatalf("other server read %d messages", len(got.Messages))
	}
	// Its long poll falls back to probing the store.
	done := make(chan wire.ReadResponse, 1)
	go func() { done <- b.mustRead("/v1/pchannels/p0/messages?from=" + got.Next + "&wait=5s") }()
	b.awaitWaiting(1)
	a.mustAppend("p0", msgs("v0", "late"))
	select {
	case r := <-done:
		if len(r.Messages) != 1 || string(r.Messages[0].Payload) != "late" {
			t.Fatalf("store long poll: %+v", r)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("store long poll did not see the append")
	}
}

func TestShutdownReleasesLeases(t *testing.T) {
	store := objstore.NewMemory()
	cfg := testConfig(t)
	srv, err := newServer(t, cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler(RoleNode)
	for _, p := range []string{"p0", "p1"} {
		_, _, err := srv.sys.Pool().Append(t.Context(), p, []segmentlog.Message{{Type: segmentlog.TypeData, VChannel: "v"}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"p0", "p1"} {
		l, err := srv.sys.Leases().Describe(t.Context(), p)
		if err != nil || !l.Released {
			t.Fatalf("lease of %s after Close: %+v, %v", p, l, err)
		}
	}
	// After Close: 503, and healthz says so.
	rec := newRecorder()
	h.ServeHTTP(rec, mustRequest(t, "POST", "/v1/pchannels/p0/append", wire.ContentTypeJSON, `{"messages":[{"vchannel":"v"}]}`))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("append after Close: %d %s", rec.Code, rec.Body)
	}
	rec = newRecorder()
	h.ServeHTTP(rec, mustRequest(t, "GET", "/healthz", "", ""))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("healthz after Close: %d", rec.Code)
	}
}

// TestTimeTickBatch: after a quiet interval the pool's writer persists one
// timetick-only batch (readers elsewhere see time pass), which takes an
// offset: a conditional append must name the tail after it.
func TestTimeTickBatch(t *testing.T) {
	cfg := testConfig(t)
	cfg.TimeTickInterval = 50 * time.Millisecond
	ts := newTestServer(t, cfg, objstore.NewMemory())
	first := ts.mustAppend("p0", msgs("v0", "a"))
	want := first.Acks[0].Offset + 2
	var tail wire.TailResponse
	testkit.Eventually(t, 5*time.Second, "one timetick batch after the data", func() bool {
		ts.get("/v1/pchannels/p0/tail").decode(t, &tail)
		return tail.NextOffset == want
	})
	// Quiet: the writer's timetick loop looks again and again, and writes
	// no more timetick batches without data.
	checks := func() int64 {
		for _, w := range ts.srv.sys.Pool().Writers() {
			if w.PChannel == "p0" {
				return w.Stats.TimeTickChecks
			}
		}
		t.Fatal("no writer of p0")
		return 0
	}
	since := checks()
	testkit.Eventually(t, 5*time.Second, "three more rounds of the timetick loop", func() bool { return checks() >= since+3 })
	ts.get("/v1/pchannels/p0/tail").decode(t, &tail)
	if tail.NextOffset != want {
		t.Fatalf("an idle pchannel kept writing: tail %d, want %d", tail.NextOffset, want)
	}
	got := ts.mustRead("/v1/pchannels/p0/messages?type=timetick&type=data")
	if len(got.Messages) != 2 || got.Messages[1].Type != "timetick" || got.Messages[1].TimeTick <= first.Acks[0].TimeTick {
		t.Fatalf("read with timeticks: %+v", got)
	}
	req := msgs("v0", "b")
	stale := first.Acks[0].Offset + 1
	req.ExpectedOffset = &stale
	if r := ts.postJSON("/v1/pchannels/p0/append", req); r.status != http.StatusPreconditionFailed {
		t.Fatalf("expected_offset behind the timetick batch: %d %s", r.status, r.body)
	}
	req.ExpectedOffset = &want
	if ar := ts.mustAppend("p0", req); ar.Acks[0].Offset != want {
		t.Fatalf("landed at %d, want %d", ar.Acks[0].Offset, want)
	}
}

// TestReadBelowCheckpoint: once the flusher has moved the checkpoint, reads
// from earliest come from the segments, then the WAL, with no gap.
func TestReadBelowCheckpoint(t *testing.T) {
	store := objstore.NewMemory()
	ts := newTestServer(t, testConfig(t), store)
	for i := range 5 {
		ts.mustAppend("p0", msgs("v0", strconv.Itoa(i)))
	}
	f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: "p0", Logger: testLogger(t)}, store)
	if err != nil {
		t.Fatal(err)
	}
	rounds, err := f.FlushNow(t.Context())
	if err != nil || len(rounds) == 0 {
		t.Fatalf("flush: %v, %d rounds", err, len(rounds))
	}
	cp, _, err := segmentlog.ReadCheckpoint(t.Context(), store, segmentlog.Layout{}, "p0")
	if err != nil || cp.C == 0 {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
	ts.mustAppend("p0", msgs("v0", "5"))
	got := ts.mustRead("/v1/pchannels/p0/messages?from=earliest")
	if len(got.Messages) != 6 {
		t.Fatalf("read %d messages across the checkpoint %d, want 6", len(got.Messages), cp.C)
	}
	for i, m := range got.Messages {
		if string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m.Payload)
		}
	}
}

// TestStatusTailInSharedMode: a shared term writes no tail hint into the
// lease record, so a process that does not write the pchannel (another
// Lambda environment, the coordinator function) probes the store for the
// status table's tail: it is the next offset after the last ack, not the
// lease record's 0.
func TestStatusTailInSharedMode(t *testing.T) {
	store := objstore.NewMemory()
	cfg := testConfig(t)
	cfg.WriteMode = system.WriteShared
	writer := newTestServer(t, cfg, store)
	var last wire.AppendResponse
	for i := range 3 {
		last = writer.mustAppend("p0", msgs("v0", fmt.Sprint(i)))
	}
	cfg.Holder += "-other"
	other := newTestServer(t, cfg, store)
	var st wire.StatusResponse
	mustOK(t, "status", other.get("/v1/pchannels"), &st)
	want := last.Acks[0].Offset + 1
	if len(st.PChannels) != 1 || st.PChannels[0].TailSource != "store" || st.PChannels[0].Tail != want {
		t.Fatalf("status from a process that does not write p0: %+v, want tail %d from the store", st.PChannels, want)
	}
	if st.PChannels[0].TailHint == want {
		t.Fatalf("the lease record's tail hint is %d: the test no longer shows the probe is needed", want)
	}
}
