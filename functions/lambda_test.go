package functions_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/testkit"
	"github.com/cairnlog/cairn/segmentlog"
)

// lambdaEnv returns the CAIRN_* and AWS credential variables of a
// deployment on the shared MinIO under a prefix of the test's own, and a
// store over the same bucket and prefix for the test to look at.
func lambdaEnv(t *testing.T) (map[string]string, objstore.Store) {
	t.Helper()
	mc := miniotest.Get(t)
	prefix := strings.ReplaceAll(t.Name(), "/", "-")
	store, err := mc.NewStore(t.Context(), "lambda", prefix)
	if err != nil {
		t.Fatal(err)
	}
	user, pass := mc.Credentials()
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     user,
		"AWS_SECRET_ACCESS_KEY": pass,
		"CAIRN_S3_ENDPOINT":     mc.Endpoint(),
		"CAIRN_S3_BUCKET":       "lambda",
		"CAIRN_S3_PREFIX":       prefix,
		"CAIRN_LEASE_TTL":       "4s", // margin 1 s, renew every 1 s
		"CAIRN_LEASE_WAIT":      "2s",
		"CAIRN_CACHE_BYTES":     strconv.Itoa(16 << 20),
		"CAIRN_MAX_WAIT":        "5s",
		"CAIRN_LOG_LEVEL":       "info",
	}, store
}

func getReq(path string) urlRequest { return urlRequest{method: "GET", path: path} }

func appendJSON(p string, payloads ...string) urlRequest {
	var req wire.AppendRequest
	for _, pl := range payloads {
		req.Messages = append(req.Messages, wire.MessageIn{VChannel: "v0", Payload: []byte(pl)})
	}
	b, _ := json.Marshal(req)
	return urlRequest{method: "POST", path: "/v1/pchannels/" + p + "/append",
		header: map[string]string{"Content-Type": "application/json"}, body: b}
}

func decode[T any](t *testing.T, r urlResponse) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %d %q: %v", r.status, r.body, err)
	}
	return v
}

func wantStatus(t *testing.T, what string, r urlResponse, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %d %s, want %d", what, r.status, r.body, status)
	}
}

// TestFunctionURLs drives each function's real bootstrap through the
// Runtime API with Function URL events, against MinIO.
func TestFunctionURLs(t *testing.T) {
	env, _ := lambdaEnv(t)
	node := startContainer(t, "node", "node-1", env)

	r := node.mustCall(appendJSON("p0", "one", "two"))
	wantStatus(t, "JSON append", r, 200)
	ack := decode[wire.AppendResponse](t, r)
	if ack.PChannel != "p0" || len(ack.Acks) != 2 || ack.Acks[1].Index != 1 {
		t.Fatalf("acks %+v", ack)
	}
	if ct := r.header["Content-Type"]; ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}

	// A binary batch, base64-encoded by the Function URL service.
	batch, err := (&segmentlog.Batch{Kind: segmentlog.KindData, Messages: []segmentlog.Message{
		{Type: segmentlog.TypeInsert, VChannel: "v1", TimeTick: 7, Payload: []byte{0, 1, 2, 0xff}},
	}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	r = node.mustCall(urlRequest{method: "POST", path: "/v1/pchannels/p0/append", base64: true,
		header: map[string]string{"Content-Type": wire.ContentTypeBatch}, body: batch})
	wantStatus(t, "binary append", r, 200)
	// JSON may arrive base64-encoded too.
	jr := appendJSON("p0", "three")
	jr.base64 = true
	wantStatus(t, "base64 JSON append", node.mustCall(jr), 200)

	r = node.mustCall(urlRequest{method: "GET", path: "/v1/pchannels/p0/messages", query: "from=earliest&type=data&type=insert"})
	wantStatus(t, "read", r, 200)
	read := decode[wire.ReadResponse](t, r)
	var got []string
	for _, m := range read.Messages {
		got = append(got, string(m.Payload))
	}
	if want := []string{"one", "two", "\x00\x01\x02\xff", "three"}; !slices.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
	r = node.mustCall(urlRequest{method: "GET", path: "/v1/pchannels/p0/messages", query: "from=" + read.Next + "&wait=200ms"})
	wantStatus(t, "empty long poll", r, 200)
	if rr := decode[wire.ReadResponse](t, r); len(rr.Messages) != 0 || rr.Next != read.Next {
		t.Fatalf("long poll past the tail: %+v", rr)
	}
	tail := decode[wire.TailResponse](t, node.mustCall(getReq("/v1/pchannels/p0/tail")))
	// Three batches, and perhaps timetick batches after quiet seconds.
	if tail.Source != "writer" || tail.NextOffset < ack.Acks[0].Offset+3 {
		t.Fatalf("tail %+v", tail)
	}
	r = node.mustCall(urlRequest{method: "POST", path: "/v1/pchannels/p0/sync"})
	wantStatus(t, "sync", r, 200)

	// Refusals are JSON errors through the Function URL too.
	r = node.mustCall(urlRequest{method: "POST", path: "/v1/pchannels/p0/append",
		header: map[string]string{"Content-Type": "application/json"}, body: []byte(`{"messages":[{"vchannel":"../x"}]}`)})
	wantStatus(t, "bad vchannel", r, 400)
	if e := decode[api.Error](t, r); e.Code != wire.CodeInvalidName {
		t.Fatalf("error %+v", e)
	}
	wantStatus(t, "unknown pchannel", node.mustCall(getReq("/v1/pchannels/nope/messages")), 404)
	wantStatus(t, "coordinator route on the node", node.mustCall(getReq("/v1/leases")), 404)
	wantStatus(t, "healthz", node.mustCall(getReq("/healthz")), 200)
	r = node.mustCall(getReq("/metrics"))
	if !bytes.Contains(r.body, []byte(`cairn_writer_frontier{pchannel="p0"}`)) {
		t.Fatalf("node metrics lack the writer: %.500s", r.body)
	}

	coord := startContainer(t, "coordinator", "coordinator-1", env)
	leases := decode[wire.LeasesResponse](t, coord.mustCall(getReq("/v1/leases")))
	if len(leases.Leases) != 1 || leases.Leases[0].Holder != "cairn-node/2026/11/21/[$LATEST]node-1" || !leases.Leases[0].Live {
		t.Fatalf("leases %+v", leases)
	}
	st := decode[wire.StatusResponse](t, coord.mustCall(getReq("/v1/pchannels")))
	if len(st.PChannels) != 1 || st.PChannels[0].TailSource != "store" || st.PChannels[0].Tail < tail.NextOffset {
		t.Fatalf("status %+v", st)
	}
	wantStatus(t, "lease", coord.mustCall(getReq("/v1/pchannels/p0/lease")), 200)
	wantStatus(t, "node route on the coordinator", coord.mustCall(appendJSON("p0", "x")), 404)

	snap := startContainer(t, "snapshot", "snapshot-1", env)
	wantStatus(t, "snapshot healthz", snap.mustCall(getReq("/healthz")), 200)
	wantStatus(t, "snapshot openapi", snap.mustCall(getReq("/v1/openapi.yaml")), 200)
	wantStatus(t, "lease route on snapshot", snap.mustCall(getReq("/v1/leases")), 404)

	// The scheduled function gets an EventBridge event and answers null.
	maint := startContainer(t, "maintenance", "maintenance-1", env)
	ev := `{"version":"0","id":"e1","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012",` +
		`"time":"2026-11-21T20:00:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/cairn"],"detail":{}}`
	res, err := maint.invoke([]byte(ev), 30*time.Second)
	if err != nil || res.isError || strings.TrimSpace(string(res.body)) != "null" {
		t.Fatalf("maintenance: %+v %v", res, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, task := range []string{"stuck-assignment check", "flush", "compact", "broadcasts", "retention", "txns", "gc"} {
		if !maint.waitLog(ctx, `"task":"`+task+`"`) {
			t.Fatalf("maintenance logged no %s task:\n%s", task, maint.log())
		}
	}
}

// requestCounts are a container's store requests by operation.
type requestCounts map[string]float64

func (c requestCounts) total() float64 {
	var sum float64
	for _, v := range c {
		sum += v
	}
	return sum
}

// minus is c − o, operations with no change left out, as "op=n ...".
func (c requestCounts) minus(o requestCounts) string {
	var parts []string
	for op, v := range c {
		if d := v - o[op]; d != 0 {
			parts = append(parts, fmt.Sprintf("%s=%.0f", op, d))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

var storeOpLabel = regexp.MustCompile(`op="([a-z_]+)"`)

// storeRequests reads cairn_store_requests_total from a container's
// metrics, by operation.
func storeRequests(t *testing.T, c *container) requestCounts {
	t.Helper()
	r := c.mustCall(getReq("/metrics"))
	wantStatus(t, "metrics", r, 200)
	out := requestCounts{}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "cairn_store_requests_total{") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			m := storeOpLabel.FindStringSubmatch(line)
			if err != nil || m == nil {
				t.Fatalf("metrics line %q", line)
			}
			out[m[1]] += v
		}
	}
	return out
}

// producer appends sequentially through one container, remembering every
// acknowledged payload in order.
type producer struct {
	t     *testing.T
	acked []string
	n     int
}

// send appends one message; it returns the answer (200 or an error status).
func (p *producer) send(c *container, pchannel string) (urlResponse, time.Duration) {
	p.t.Helper()
	p.n++
	payload := fmt.Sprintf("m%04d", p.n)
	start := time.Now()
	r := c.mustCall(appendJSON(pchannel, payload))
	d := time.Since(start)
	if r.status == 200 {
		p.acked = append(p.acked, payload)
	}
	return r, d
}

// TestNodeHandoff runs node containers over one pchannel: a graceful
// handoff (the Shutdown phase's SIGTERM releases the lease), a frozen
// holder (SIGSTOP: the other container waits out the lease and is answered
// 503 with Retry-After meanwhile), the frozen one thawing to find itself
// fenced, and a holder that thaws with nobody else around keeping its
// term. It reports what a
// sequential producer gets per append and what each handoff costs.
func TestNodeHandoff(t *testing.T) {
	env, store := lambdaEnv(t)
	const p = "p0"
	prod := &producer{t: t}
	a := startContainer(t, "node", "node-a", env)

	// Warm up A (opens the writer: acquire, recovery, fence).
	r, coldFirst := prod.send(a, p)
	wantStatus(t, "first append on A", r, 200)

	// Steady state: one sequential producer through the Runtime API.
	const n = 40
	before := storeRequests(t, a)
	var total time.Duration
	lat := make([]time.Duration, 0, n)
	for range n {
		r, d := prod.send(a, p)
		wantStatus(t, "append on A", r, 200)
		total += d
		lat = append(lat, d)
	}
	perAppend := (storeRequests(t, a).total() - before.total()) / n
	slices.Sort(lat)
	t.Logf("sequential producer, warm node: %.2f ms/append mean, p50 %.2f ms, p90 %.2f ms, %.2f store requests/append (%d appends; first append of a cold container %.1f ms)",
		ms(total)/n, ms(lat[n/2]), ms(lat[n*9/10]), perAppend, n, ms(coldFirst))

	leases, err := coordinator.NewLeases(store, segmentlog.Layout{}, coordinator.LeaseConfig{TTL: 4 * time.Second, Margin: time.Second},
		coordinator.WithRequestTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	tailA := decode[wire.TailResponse](t, a.mustCall(getReq("/v1/pchannels/p0/tail")))
	termA := tailA.Term

	// 1. Graceful handoff: Lambda sends SIGTERM before it shuts a container
	// down; A releases its lease and B takes over at once.
	b := startContainer(t, "node", "node-b", env)
	wantStatus(t, "B warm-up", b.mustCall(getReq("/healthz")), 200)
	// Lambda's Shutdown phase: SIGTERM, then SIGKILL after the 500 ms an
	// internal extension (aws-lambda-go's SIGTERM one) is given.
	start := time.Now()
	reaped := make(chan struct{})
	go func() { a.reap(); close(reaped) }()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if !a.waitLog(ctx, "shutdown complete") {
		t.Fatalf("A did not shut down on SIGTERM:\n%s", a.log())
	}
	released := time.Since(start)
	<-reaped
	if l, err := leases.Describe(t.Context(), p); err != nil || !l.Released || l.Term != termA {
		t.Fatalf("lease after A's SIGTERM: %+v %v", l, err)
	}
	beforeB := storeRequests(t, b)
	r, handoff := prod.send(b, p)
	wantStatus(t, "first append on B after the release", r, 200)
	afterB := storeRequests(t, b)
	_, steadyB := prod.send(b, p)
	t.Logf("graceful handoff (SIGTERM → release → next holder): release took %.1f ms; B's first append %.1f ms and %.0f store requests [%s] (acquire, replay from the checkpoint, fence window of 8, the batch) over a WAL of %d slots; B's next append %.1f ms",
		ms(released), ms(handoff), afterB.total()-beforeB.total(), afterB.minus(beforeB), tailA.NextOffset, ms(steadyB))
	termB := decode[wire.TailResponse](t, b.mustCall(getReq("/v1/pchannels/p0/tail"))).Term
	if termB != termA+1 {
		t.Fatalf("B's term %d, A's %d", termB, termA)
	}

	// 2. Frozen holder: B is frozen holding the lease (as Lambda freezes an
	// idle container). C never takes a live lease over: it answers 503
	// lease_held with Retry-After until the lease expires, then takes over.
	c := startContainer(t, "node", "node-c", env)
	wantStatus(t, "C warm-up", c.mustCall(getReq("/healthz")), 200)
	b.freeze()
	frozenAt := time.Now()
	busy, reqsBefore := 0, storeRequests(t, c)
	var firstC time.Duration
	for {
		r, d := prod.send(c, p)
		if r.status == 200 {
			firstC = d
			break
		}
		wantStatus(t, "append on C while B is frozen", r, 503)
		if e := decode[api.Error](t, r); e.Code != wire.CodeLeaseHeld || r.header["Retry-After"] == "" {
			t.Fatalf("503 %+v without lease_held and Retry-After: %v", e, r.header)
		}
		if d < 1500*time.Millisecond {
			t.Fatalf("C answered 503 after %v, before its lease wait", d)
		}
		busy++
		if time.Since(frozenAt) > 30*time.Second {
			t.Fatal("C never took the lease over")
		}
	}
	takeover := time.Since(frozenAt)
	afterC := storeRequests(t, c)
	t.Logf("frozen holder (SIGSTOP): C took over %.1f s after the freeze (TTL 4 s + margin 1 s after B's last renew), after %d answers of 503 lease_held; %.0f store requests on C meanwhile [%s], its winning append %.0f ms",
		takeover.Seconds(), busy, afterC.total()-reqsBefore.total(), afterC.minus(reqsBefore), ms(firstC))

	// B thaws: its writer finds the lease lost, is replaced, and the new
	// one waits for C's live lease: 503, never a write under the old term.
	b.thaw()
	r, _ = prod.send(b, p)
	wantStatus(t, "append on B after thawing behind C", r, 503)
	if e := decode[api.Error](t, r); e.Code != wire.CodeLeaseHeld {
		t.Fatalf("thawed B: %+v", e)
	}

	// 3. A holder that thaws with nobody else around renews and keeps its
	// term, writer and cache.
	termC := decode[wire.TailResponse](t, c.mustCall(getReq("/v1/pchannels/p0/tail"))).Term
	c.freeze()
	// Frozen past its lease: the record's expiry and the margin behind us
	// (a renew sent just before the freeze may still land, so read again).
	testkit.EventuallyNil(t, 15*time.Second, "C's lease expired while frozen", func() error {
		l, err := leases.Describe(t.Context(), p)
		if err != nil {
			return err
		}
		if left := time.Until(l.Expires.Add(time.Second)); left > 0 {
			return fmt.Errorf("term %d live for %v more", l.Term, left)
		}
		return nil
	})
	c.thaw()
	r, thawed := prod.send(c, p)
	wantStatus(t, "append on C after thawing alone", r, 200)
	if got := decode[wire.AppendResponse](t, r).Term; got != termC {
		t.Fatalf("C's term after thawing alone: %d, before %d", got, termC)
	}
	t.Logf("thaw with the lease expired but not taken: first append %.1f ms, same term %d (renewed, no re-fence)", ms(thawed), termC)

	// Every acknowledged append is delivered exactly once, in order.
	var delivered []string
	from := "earliest"
	for {
		r := c.mustCall(urlRequest{method: "GET", path: "/v1/pchannels/p0/messages", query: "from=" + from + "&max=1000"})
		wantStatus(t, "read back", r, 200)
		rr := decode[wire.ReadResponse](t, r)
		for _, m := range rr.Messages {
			delivered = append(delivered, string(m.Payload))
		}
		if len(rr.Messages) == 0 {
			break
		}
		from = rr.Next
	}
	if !slices.Equal(delivered, prod.acked) {
		t.Fatalf("delivered %d messages %q\nacked %d %q", len(delivered), delivered, len(prod.acked), prod.acked)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
