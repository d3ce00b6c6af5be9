package system

import (
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

func TestConfigDefaultsKeepProtocolRelations(t *testing.T) {
	for _, ttl := range []time.Duration{2 * time.Second, 4 * time.Second, 10 * time.Second, time.Minute} {
		d := Config{LeaseTTL: ttl}
		d.EnsureDefaults()
		if err := d.Validate(); err != nil {
			t.Errorf("TTL %v: %v", ttl, err)
		}
		if d.RenewInterval+2*d.LeaseRequestTimeout() > d.LeaseTTL-d.LeaseMargin || d.LeaseRequestTimeout() >= d.LeaseMargin {
			t.Errorf("TTL %v: I %v, R %v, m %v break I + 2R ≤ TTL − m or R < m", ttl, d.RenewInterval, d.LeaseRequestTimeout(), d.LeaseMargin)
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
		c := Config{LeaseTTL: ttl}
		c.EnsureDefaults()
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "min age") {
			t.Errorf("TTL %v: %v, want a refusal naming the min age", ttl, err)
		}
	}
	ok := Config{LeaseTTL: 20 * time.Minute}
	ok.EnsureDefaults()
	if err := ok.Validate(); err != nil {
		t.Errorf("TTL 20m: %v", err)
	}
	if segmentlog.DefaultDedupWindow > snapshot.DefaultMinAge {
		t.Errorf("dedup window %v exceeds min age %v", segmentlog.DefaultDedupWindow, snapshot.DefaultMinAge)
	}
}

// TestValidateWantsDefaults: Validate is meant for a config with its
// defaults applied, and says so rather than passing a zero config.
func TestValidateWantsDefaults(t *testing.T) {
	if err := (Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "EnsureDefaults") {
		t.Fatalf("Validate of a zero config: %v", err)
	}
	var c Config
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate after EnsureDefaults: %v", err)
	}
	c.PChannels = []string{"p0", "p0"}
	if err := c.Validate(); err == nil {
		t.Fatal("a pchannel listed twice: no error")
	}
}
