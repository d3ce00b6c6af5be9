package client

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// produce appends n messages "<prefix>NNN" to pchannel's vchannel v0 and
// returns their acks.
func produce(t *testing.T, c *Client, pchannel, prefix string, n int) []Ack {
	t.Helper()
	p, err := c.Producer(pchannel, ProducerConfig{VChannel: "v0", MaxBatchMessages: 4})
	if err != nil {
		t.Fatal(err)
	}
	fs := make([]*Future, n)
	for i := range fs {
		if fs[i], err = p.SendAsync(t.Context(), Message{Payload: fmt.Appendf(nil, "%s%03d", prefix, i)}); err != nil {
			t.Fatal(err)
		}
	}
	closeProducer(t, p)
	acks := make([]Ack, n)
	for i, f := range fs {
		if acks[i], err = f.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	return acks
}

// TestConsumerResumesFromPosition: a consumer stopped part-way is resumed
// by a new one from its Position, with nothing delivered twice and nothing
// missed, and then follows the tail with a long poll.
func TestConsumerResumesFromPosition(t *testing.T) {
	url := newServer(t, serverOptions{})
	c, _ := newClient(t, url)
	produce(t, c, "p0", "a", 10)

	var got []string
	co, err := c.Consumer("p0", ConsumerConfig{Max: 3})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		d, err := co.Next(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(d.Payload))
	}
	saved := co.Position()
	if !strings.HasPrefix(saved, "id:") {
		t.Fatalf("position %q after 4 messages", saved)
	}

	co2, err := c.Consumer("p0", ConsumerConfig{From: saved, Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for range 6 {
		d, err := co2.Next(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(d.Payload))
	}
	// Next long-polls: messages produced while it waits arrive.
	type result struct {
		d   Delivery
		err error
	}
	next := make(chan result, 1)
	go func() {
		d, err := co2.Next(t.Context())
		next <- result{d, err}
	}()
	produce(t, c, "p0", "b", 2)
	r := <-next
	if r.err != nil {
		t.Fatal(r.err)
	}
	got = append(got, string(r.d.Payload))
	d, err := co2.Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, string(d.Payload))

	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprintf("a%03d", i))
	}
	want = append(want, "b000", "b001")
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("read\n%v\nwant\n%v", got, want)
	}
	if co2.Position() != After(d.ID) {
		t.Fatalf("position %q after %v", co2.Position(), d.ID)
	}
	// Resuming at the end delivers nothing more.
	co3, _ := c.Consumer("p0", ConsumerConfig{From: co2.Position(), Wait: -1})
	if ds, err := co3.Poll(t.Context(), 0); err != nil || len(ds) != 0 {
		t.Fatalf("poll at the end: %d messages, %v", len(ds), err)
	}
}

// TestConsumerFromLatest: a consumer from latest gets a concrete position
// at its first read and then only what was appended after it.
func TestConsumerFromLatest(t *testing.T) {
	url := newServer(t, serverOptions{})
	c, _ := newClient(t, url)
	produce(t, c, "p0", "old", 3)
	co, err := c.Consumer("p0", ConsumerConfig{From: Latest, Wait: -1})
	if err != nil {
		t.Fatal(err)
	}
	if ds, err := co.Poll(t.Context(), 0); err != nil || len(ds) != 0 {
		t.Fatalf("poll at the tail: %d messages, %v", len(ds), err)
	}
	if pos := co.Position(); !strings.HasPrefix(pos, "id:") {
		t.Fatalf("position %q after the first read from latest: want a concrete ID", pos)
	}
	produce(t, c, "p0", "new", 2)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i := range 2 {
		d, err := co.Next(ctx)
		if err != nil || string(d.Payload) != fmt.Sprintf("new%03d", i) {
			t.Fatalf("message %d: %q, %v", i, d.Payload, err)
		}
	}
}

// TestConsumerFilters: vchannel and type filters reach the server.
func TestConsumerFilters(t *testing.T) {
	url := newServer(t, serverOptions{})
	c, _ := newClient(t, url)
	_, err := c.Append(t.Context(), "p0", []Message{
		{VChannel: "v0", Payload: []byte("a")},
		{VChannel: "v1", Type: "insert", Payload: []byte("b")},
		{VChannel: "v1", Type: "delete", Payload: []byte("c")},
	}, AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	co, _ := c.Consumer("p0", ConsumerConfig{VChannels: []string{"v1"}, Types: []string{"delete"}, Wait: -1})
	ds, err := co.Poll(t.Context(), 0)
	if err != nil || len(ds) != 1 || string(ds[0].Payload) != "c" || ds[0].Type != "delete" || ds[0].VChannel != "v1" {
		t.Fatalf("filtered read: %+v, %v", ds, err)
	}
}

// TestConsumerPollMax: Poll hands over at most max messages, keeps the rest
// for the next call, and its position is right after the last returned.
func TestConsumerPollMax(t *testing.T) {
	url := newServer(t, serverOptions{})
	c, _ := newClient(t, url)
	acks := produce(t, c, "p0", "m", 5)
	co, _ := c.Consumer("p0", ConsumerConfig{Wait: -1})
	ds, err := co.Poll(t.Context(), 2)
	if err != nil || len(ds) != 2 || ds[1].ID != acks[1].ID || co.Position() != After(acks[1].ID) {
		t.Fatalf("poll 2: %d messages, %v, position %q", len(ds), err, co.Position())
	}
	ds, err = co.Poll(t.Context(), 0)
	if err != nil || len(ds) != 3 || ds[0].ID != acks[2].ID || co.Position() != After(acks[4].ID) {
		t.Fatalf("poll the rest: %d messages, %v, position %q", len(ds), err, co.Position())
	}
}
