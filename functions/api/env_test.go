package api

import (
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/cache"
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
	c := e.System
	if c.LeaseTTL != 6*time.Second ||
		c.LeaseWait != time.Second || e.API.MaxBodyBytes != 1000 || c.CacheBytes != cache.DefaultLambdaBytes ||
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
