package api

import (
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/cache"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

func TestLoadEnv(t *testing.T) {
	env := map[string]string{
		"CAIRN_S3_BUCKET":            "b",
		"CAIRN_S3_PREFIX":            "pre",
		"CAIRN_S3_ENDPOINT":          "http://127.0.0.1:9000",
		"CAIRN_LEASE_TTL":            "6s",
		"CAIRN_LEASE_WAIT":           "1s",
		"CAIRN_MAX_BODY_BYTES":       "1000",
		"CAIRN_LOG_LEVEL":            "debug",
		"CAIRN_PCHANNELS":            "a0, a1,a2",
		"CAIRN_COMPACTION":           "off",
		"AWS_LAMBDA_FUNCTION_NAME":   "node",
		"AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/21/[$LATEST]abc",
	}
	e, err := LoadEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c := e.Config
	if e.S3.Bucket != "b" || e.S3.Prefix != "pre" || !e.S3.PathStyle || c.LeaseTTL != 6*time.Second ||
		c.LeaseWait != time.Second || c.MaxBodyBytes != 1000 || c.CacheBytes != cache.DefaultLambdaBytes ||
		c.Holder != "node/2026/11/21/[$LATEST]abc" || strings.Join(c.PChannels, ",") != "a0,a1,a2" || !c.NoCompaction {
		t.Fatalf("env %+v", e)
	}

	for _, bad := range []map[string]string{
		{"CAIRN_LEASE_TTL": "ten"},
		{"CAIRN_LEASE_TTL": "-1s"},
		{"CAIRN_CACHE_BYTES": "0"},
		{"CAIRN_LOG_LEVEL": "loud"},
		{"CAIRN_PCHANNELS": "p0,,p1"},
		{"CAIRN_PCHANNELS": "p0,../x"},
		{"CAIRN_PCHANNELS": "p0,p0"},
		{"CAIRN_COMPACTION": "maybe"},
		{"CAIRN_LEASE_TTL": "1s", "CAIRN_LEASE_MARGIN": "2s"}, // margin ≥ TTL
	} {
		if _, err := LoadEnv(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("LoadEnv(%v) accepted", bad)
		}
	}
}

func TestConfigDefaultsKeepProtocolRelations(t *testing.T) {
	for _, ttl := range []time.Duration{2 * time.Second, 4 * time.Second, 10 * time.Second, time.Minute} {
		c := Config{LeaseTTL: ttl}
		if err := c.Validate(); err != nil {
			t.Errorf("TTL %v: %v", ttl, err)
		}
		d := c.withDefaults()
		if d.RenewInterval+2*d.leaseRequestTimeout() > d.LeaseTTL-d.LeaseMargin || d.leaseRequestTimeout() >= d.LeaseMargin {
			t.Errorf("TTL %v: I %v, R %v, m %v break I + 2R ≤ TTL − m or R < m", ttl, d.RenewInterval, d.leaseRequestTimeout(), d.LeaseMargin)
		}
	}
}

// TestConfigRefusesALeaseTTLThatOutlivesMinAge: docs/protocol.md's
// 2·TTL + 3R + skew ≤ min_age — a lease so long that a zombie could still PUT
// after GC emptied its slots is refused at start-up, not discovered as a lost
// ack. The defaults keep the idempotency window within min_age too (D ≤
// min_age), since a key older than min_age may be in a collected slot.
func TestConfigRefusesALeaseTTLThatOutlivesMinAge(t *testing.T) {
	for _, ttl := range []time.Duration{30 * time.Minute, time.Hour} {
		err := Config{LeaseTTL: ttl}.Validate()
		if err == nil || !strings.Contains(err.Error(), "min age") {
			t.Errorf("TTL %v: %v, want a refusal naming the min age", ttl, err)
		}
	}
	if err := (Config{LeaseTTL: 20 * time.Minute}).Validate(); err != nil {
		t.Errorf("TTL 20m: %v", err)
	}
	if segmentlog.DefaultDedupWindow > snapshot.DefaultMinAge {
		t.Errorf("dedup window %v exceeds min age %v", segmentlog.DefaultDedupWindow, snapshot.DefaultMinAge)
	}
}
