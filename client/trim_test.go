package client

import (
	"errors"
	"testing"
	"time"
)

// TestTrim: a trim through the SDK; a read below it fails with
// ErrTruncated carrying the earliest position, which reads on; AfterID
// resumes after a message without reading it again.
func TestTrim(t *testing.T) {
	url := newServer(t, serverOptions{})
	c, _ := newClient(t, url)
	acks := produce(t, c, "p1", "m", 6)

	r, err := c.TrimPChannel(t.Context(), "p1", AtID(acks[3].ID))
	if err != nil || r.Earliest != AtID(acks[3].ID) {
		t.Fatalf("trim: %+v, %v", r, err)
	}
	if again, err := c.TrimPChannel(t.Context(), "p1", AtID(acks[1].ID)); err != nil || again.Earliest != r.Earliest {
		t.Fatalf("a lower trim: %+v, %v; want %s unchanged", again, err, r.Earliest)
	}
	_, err = c.Read(t.Context(), "p1", ReadOptions{From: AtID(acks[0].ID)})
	earliest, ok := EarliestOf(err)
	if !errors.Is(err, ErrTruncated) || !ok || earliest != r.Earliest {
		t.Fatalf("read below the trim point: %v (earliest %q); want ErrTruncated with %s", err, earliest, r.Earliest)
	}
	res, err := c.Read(t.Context(), "p1", ReadOptions{From: earliest})
	if err != nil || len(res.Messages) != 3 || res.Messages[0].ID != acks[3].ID {
		t.Fatalf("read from the earliest position: %+v, %v", res, err)
	}
	res, err = c.Read(t.Context(), "p1", ReadOptions{From: AfterID(acks[4].ID)})
	if err != nil || len(res.Messages) != 1 || res.Messages[0].ID != acks[5].ID {
		t.Fatalf("read from %s: %+v, %v; want only %v", AfterID(acks[4].ID), res, err, acks[5].ID)
	}
	if _, err := c.TrimPChannel(t.Context(), "p1", Latest); !errors.Is(err, ErrInvalid) {
		t.Fatalf("trim at latest: %v, want ErrInvalid", err)
	}
	if _, err := c.TrimVChannel(t.Context(), "nope", AtID(acks[0].ID)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("trim an unknown vchannel: %v, want ErrNotFound", err)
	}
}

// TestRetention: policies through the SDK, shown by the status table and
// describe.
func TestRetention(t *testing.T) {
	url := newServer(t, serverOptions{})
	c, _ := newClient(t, url)
	produce(t, c, "p1", "m", 3)
	r, err := c.SetPChannelRetention(t.Context(), "p1", RetentionPolicy{MaxAge: time.Hour, MaxBytes: 1 << 20})
	if err != nil || r.MaxAge != "1h0m0s" || r.MaxBytes != 1<<20 || r.Earliest != "id:0.0" {
		t.Fatalf("set retention: %+v, %v", r, err)
	}
	rows, err := c.PChannels(t.Context())
	if err != nil || len(rows) != 1 || rows[0].Retention != r {
		t.Fatalf("status: %+v, %v; want retention %+v", rows, err, r)
	}
	if _, err := c.SetPChannelRetention(t.Context(), "p1", RetentionPolicy{MaxBytes: -1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative bytes: %v", err)
	}
	if _, err := c.CreateVChannel(t.Context(), "orders", "p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetVChannelRetention(t.Context(), "orders", RetentionPolicy{MaxBytes: 10}); err != nil {
		t.Fatal(err)
	}
	v, err := c.VChannel(t.Context(), "orders")
	if err != nil || v.Retention == nil || v.Retention.MaxBytes != 10 || v.Retention.VChannel != "orders" {
		t.Fatalf("describe: %+v, %v", v, err)
	}
}
