package lambdaemu_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/lambdaemu/lambdaemutest"
	"github.com/cairnlog/cairn/infra/miniotest"
	"github.com/cairnlog/cairn/segmentlog"
)

// controlWAL appends the registry's control messages through a shared
// writer of the test process: one more environment of the deployment.
type controlWAL struct{ sw *segmentlog.SharedWriter }

func (c controlWAL) AppendControl(ctx context.Context, _ string, msgs ...segmentlog.Message) ([]segmentlog.Ack, error) {
	return c.sw.AppendControl(ctx, msgs...)
}

// createVChannel registers vchannel on pchannel in the deployment env
// describes, as the coordinator function would: with the real registry and
// a shared writer, from the test process.
func createVChannel(t *testing.T, env map[string]string, vchannel, pchannel string) {
	t.Helper()
	ctx := t.Context()
	store, err := miniotest.Get(t).NewStore(ctx, env["CAIRN_S3_BUCKET"], env["CAIRN_S3_PREFIX"])
	if err != nil {
		t.Fatal(err)
	}
	leases, err := coordinator.NewLeases(store, segmentlog.Layout{}, coordinator.LeaseConfig{TTL: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := coordinator.NewRegistry(coordinator.Config{}, store, leases)
	if err != nil {
		t.Fatal(err)
	}
	sw, err := segmentlog.OpenSharedWriter(ctx, segmentlog.WriterConfig{PChannel: pchannel, Holder: "test-coordinator",
		Logger: slog.New(slog.DiscardHandler)}, store, leases)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close(ctx)
	if _, err := reg.Create(ctx, controlWAL{sw}, vchannel, pchannel); err != nil {
		t.Fatal(err)
	}
}

// TestNodeSharedTxn runs a transaction across environments of the real
// node bootstrap in shared write mode (the template's default): begin,
// the appends and the commit each land on another environment, frozen
// between requests; the environment that began it is then frozen for
// good; the commit, and its retry on yet another environment, still
// write it once, as one batch.
func TestNodeSharedTxn(t *testing.T) {
	ev := newEvents()
	env := nodeEnv(t)
	env["CAIRN_WRITE_MODE"] = "shared"
	f := lambdaemutest.Start(t, lambdaemu.Config{
		Name: "cairn-node", Bootstrap: bootstraps.Path(t, "node"), Env: env,
		Timeout: 30 * time.Second, ReservedConcurrency: 3, Policy: lambdaemu.RoundRobin(), Hooks: ev.hooks(),
	})
	createVChannel(t, env, "v0", "p0")

	// Warm three environments: two long polls hold the first two while
	// the third starts.
	poll1 := goGet(f.URL() + "/v1/pchannels/p0/messages?from=latest&wait=2s")
	ev.wait(t, "invoked", 1)
	poll2 := goGet(f.URL() + "/v1/pchannels/p0/messages?from=latest&wait=1s")
	ev.wait(t, "invoked", 2)
	want(t, "warm-up", get(t, f.URL()+"/healthz"), 200)
	want(t, "long poll", <-poll1, 200)
	want(t, "long poll", <-poll2, 200)
	ev.wait(t, "frozen", 3)
	seq := &sequential{t: t, f: f, ev: ev, frozen: 3}

	begin := seq.do("POST", "/v1/vchannels/v0/txns", []byte(`{"keepalive":"2m"}`))
	want(t, "begin", begin, 200)
	var tx struct {
		Txn string `json:"txn"`
	}
	if err := json.Unmarshal([]byte(begin.body), &tx); err != nil || tx.Txn == "" {
		t.Fatalf("begin answered %s (%v)", begin.body, err)
	}
	a1 := seq.do("POST", "/v1/txns/"+tx.Txn+"/append", appendBody("t1", "t2"))
	want(t, "append 1", a1, 200)
	a2 := seq.do("POST", "/v1/txns/"+tx.Txn+"/append", appendBody("t3"))
	want(t, "append 2", a2, 200)
	if begin.env == a1.env || a1.env == a2.env || begin.env == a2.env {
		t.Fatalf("begin and appends served by environments %s, %s, %s: want three", begin.env, a1.env, a2.env)
	}
	for _, e := range f.Envs() {
		if e.ID() == atoi(t, begin.env) {
			e.FreezeForever() // the environment that began it never runs again
		}
	}

	commit := seq.do("POST", "/v1/txns/"+tx.Txn+"/commit", nil)
	want(t, "commit", commit, 200)
	var cr struct {
		Acks []struct {
			Offset    uint64 `json:"offset"`
			Index     uint32 `json:"index"`
			Duplicate bool   `json:"duplicate"`
		} `json:"acks"`
	}
	if err := json.Unmarshal([]byte(commit.body), &cr); err != nil || len(cr.Acks) != 4 || cr.Acks[0].Offset != cr.Acks[3].Offset {
		t.Fatalf("commit answered %s (%v): want 3 message acks and the commit's, in one batch", commit.body, err)
	}
	retry := seq.do("POST", "/v1/txns/"+tx.Txn+"/commit", nil)
	want(t, "commit retried", retry, 200)
	var rr struct {
		Acks []struct {
			Offset    uint64 `json:"offset"`
			Index     uint32 `json:"index"`
			Duplicate bool   `json:"duplicate"`
		} `json:"acks"`
	}
	if err := json.Unmarshal([]byte(retry.body), &rr); err != nil || len(rr.Acks) != 1 || !rr.Acks[0].Duplicate ||
		rr.Acks[0].Offset != cr.Acks[3].Offset || rr.Acks[0].Index != cr.Acks[3].Index {
		t.Fatalf("I8: commit retried on env %s answered %s (%v), want the commit's ack as a duplicate", retry.env, retry.body, err)
	}
	if commit.env == begin.env || retry.env == commit.env {
		t.Fatalf("commit on env %s, retry on env %s, begin on env %s: want the commit and its retry elsewhere", commit.env, retry.env, begin.env)
	}
	want(t, "append after the commit", seq.do("POST", "/v1/txns/"+tx.Txn+"/append", appendBody("late")), 404)

	got, _ := seq.readAll("p0")
	if !slices.Equal(got, []string{"t1", "t2", "t3"}) {
		t.Fatalf("I8: read back %q, want the transaction t1, t2, t3 once", got)
	}
	s := f.Stats()
	t.Logf("transaction over envs: begin %s, appends %s and %s, commit %s, retry %s; freezes %d thaws %d",
		begin.env, a1.env, a2.env, commit.env, retry.env, s.Total.Freezes, s.Total.Thaws)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("environment ID %q: %v", s, err)
	}
	return n
}
