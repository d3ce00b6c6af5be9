package client

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/cairnlog/cairn/segmentlog"
)

// TestEncodeBatchDecodes: what encodeBatch writes is a valid v1 data batch
// for segmentlog's decoder, message for message; what it cannot encode it
// leaves to JSON, with dst untouched.
func TestEncodeBatchDecodes(t *testing.T) {
	msgs := []Message{
		{VChannel: "v0", Payload: []byte("plain")},
		{VChannel: "v1", Type: "insert", Payload: bytes.Repeat([]byte{0, 0xff}, 200), Properties: map[string]string{"z": "1", "a": "", "m": "ü"}},
		{VChannel: "v0", Type: "delete", Key: &Key{Producer: "pr", Epoch: 1 << 40, Seq: 300}},
		{VChannel: "v2", Type: "data", Key: &Key{}}, // a zero key is no key
	}
	body, ok := encodeBatch([]byte("prefix"), msgs)
	if !ok || !bytes.HasPrefix(body, []byte("prefix")) {
		t.Fatalf("encodeBatch refused, or lost dst: %v", ok)
	}
	b, err := segmentlog.DecodeBatch(body[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	if b.Kind != segmentlog.KindData || len(b.Messages) != len(msgs) {
		t.Fatalf("decoded %v batch of %d messages", b.Kind, len(b.Messages))
	}
	types := []segmentlog.MessageType{segmentlog.TypeData, segmentlog.TypeInsert, segmentlog.TypeDelete, segmentlog.TypeData}
	for i, m := range msgs {
		got := b.Messages[i]
		var key segmentlog.IdemKey
		if m.Key != nil {
			key = segmentlog.IdemKey{Producer: m.Key.Producer, Epoch: m.Key.Epoch, Seq: m.Key.Seq}
		}
		if got.Type != types[i] || got.VChannel != m.VChannel || !bytes.Equal(got.Payload, m.Payload) || got.Key != key || len(got.Properties) != len(m.Properties) {
			t.Fatalf("message %d decoded as %+v, sent %+v", i, got, m)
		}
		for k, v := range m.Properties {
			if got.Properties[k] != v {
				t.Fatalf("message %d property %q: %q, want %q", i, k, got.Properties[k], v)
			}
		}
	}

	for name, m := range map[string]Message{
		"unknown type":       {VChannel: "v0", Type: "flush"},
		"no vchannel":        {},
		"vchannel not UTF-8": {VChannel: "v\xff"},
		"empty property key": {VChannel: "v0", Properties: map[string]string{"": "x"}},
		"long property":      {VChannel: "v0", Properties: map[string]string{"k": strings.Repeat("x", 64<<10+1)}},
		"key, no producer":   {VChannel: "v0", Key: &Key{Seq: 3}},
	} {
		if out, ok := encodeBatch([]byte("dst"), []Message{{VChannel: "v0"}, m}); ok || string(out) != "dst" {
			t.Errorf("%s: encoded (%v) or dst changed to %q", name, ok, out)
		}
	}
}

// TestProducerSendsBinaryBatches: the Producer's appends go as binary
// batches, with after_seq in the query, and what they carry reads back as
// sent; a message the binary body cannot carry goes as JSON and meets the
// server's own answer.
func TestProducerSendsBinaryBatches(t *testing.T) {
	var mu sync.Mutex
	types := map[string]int{}
	url := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isAppend(r) {
				mu.Lock()
				types[r.Header.Get("Content-Type")]++
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		})
	}})
	c, _ := newClient(t, url)
	p, err := c.Producer("p0", ProducerConfig{VChannel: "v0", Window: 4, MaxBatchMessages: 7})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		m := Message{Type: []string{"data", "insert", "delete"}[i%3], Payload: fmt.Appendf(nil, "m%03d", i), Properties: map[string]string{"i": fmt.Sprint(i)}}
		if _, err := p.SendAsync(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	closeProducer(t, p)
	got := readAll(t, c, "p0")
	if len(got) != n {
		t.Fatalf("read %d messages, want %d", len(got), n)
	}
	for i, d := range got {
		if string(d.Payload) != fmt.Sprintf("m%03d", i) || d.Type != []string{"data", "insert", "delete"}[i%3] ||
			d.Properties["i"] != fmt.Sprint(i) || d.Key == nil || d.Key.Seq != uint64(i) || d.Key.Producer != p.Name() {
			t.Fatalf("message %d read back as %+v", i, d)
		}
	}
	mu.Lock()
	if types[contentTypeBatch] == 0 || types["application/json"] != 0 {
		t.Fatalf("append bodies sent: %v; want every one binary", types)
	}
	mu.Unlock()

	_, err = c.Append(t.Context(), "p0", []Message{{VChannel: "v0", Type: "flush"}}, AppendOptions{})
	check(t, "append of a control type", err, ErrInvalid, "invalid", 400)
	mu.Lock()
	defer mu.Unlock()
	if types["application/json"] != 1 {
		t.Fatalf("append bodies sent: %v; want the control type as JSON", types)
	}
}

// FuzzEncodeBatch: whatever encodeBatch accepts decodes with segmentlog's
// decoder to the same messages; what it refuses is one of the cases it
// leaves to JSON.
func FuzzEncodeBatch(f *testing.F) {
	f.Add("v0", "insert", []byte("payload"), "k", "v", "pr", uint64(1), uint64(2))
	f.Add("", "", []byte(nil), "", "", "", uint64(0), uint64(0))
	f.Add("v\xff", "flush", []byte{0}, "k", "\xff", "", uint64(3), uint64(0))
	f.Fuzz(func(t *testing.T, vchannel, typ string, payload []byte, pk, pv, producer string, epoch, seq uint64) {
		m := Message{VChannel: vchannel, Type: typ, Payload: payload, Properties: map[string]string{pk: pv}}
		if producer != "" || epoch != 0 || seq != 0 {
			m.Key = &Key{Producer: producer, Epoch: epoch, Seq: seq}
		}
		body, ok := encodeBatch(nil, []Message{m, {VChannel: "v1"}})
		_, known := messageTypes[typ]
		leftToJSON := !known || vchannel == "" || !encodable(vchannel) || pk == "" || !encodable(pk) || !encodable(pv) ||
			(m.Key != nil && (producer == "" || !encodable(producer)))
		if ok == leftToJSON {
			t.Fatalf("encodeBatch said %v for %+v", ok, m)
		}
		if !ok {
			return
		}
		b, err := segmentlog.DecodeBatch(body)
		if err != nil {
			t.Fatalf("%+v encodes to a batch that does not decode: %v", m, err)
		}
		got := b.Messages[0]
		if len(b.Messages) != 2 || got.VChannel != vchannel || !bytes.Equal(got.Payload, payload) || got.Properties[pk] != pv ||
			got.Key.Producer != producer || got.Key.Epoch != epoch || got.Key.Seq != seq || byte(got.Type) != messageTypes[typ] {
			t.Fatalf("%+v decoded as %+v", m, b.Messages)
		}
	})
}
