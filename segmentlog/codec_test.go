package segmentlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"
)

// updateGolden rewrites the golden files: go test ./segmentlog -run Golden -update
var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testNonce is UUID 0190d1c2-7a4b-7c3d-8e5f-0123456789ab.
var testNonce = [16]byte{0x01, 0x90, 0xd1, 0xc2, 0x7a, 0x4b, 0x7c, 0x3d, 0x8e, 0x5f, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab}

// tt0 is a realistic timetick: 2026-01-01T00:00:00Z in ms, shifted past the
// 18 logical bits.
const tt0 = uint64(1767225600000) << 18

// ---------------------------------------------------------------------------
// Round trips

func TestCodecRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		in   Batch
		want *Batch // nil: want == in
	}{
		{name: "fence", in: Batch{Kind: KindFence, Term: 2, Offset: 10, Nonce: testNonce}},
		{name: "filler", in: Batch{Kind: KindFiller, Term: 2, Offset: 11, Nonce: testNonce}},
		{name: "tombstone", in: Batch{Kind: KindTombstone, Term: 2, Offset: 12}},
		{name: "fence empty messages slice", in: Batch{Kind: KindFence, Term: 1, Messages: []Message{}},
			want: &Batch{Kind: KindFence, Term: 1}},
		{name: "max term and offset", in: Batch{Kind: KindFence, Term: 1<<64 - 1, Offset: 1<<64 - 1}},
		{name: "data minimal", in: Batch{Kind: KindData, Term: 1, Messages: []Message{
			{Type: TypeData, VChannel: "v", TimeTick: 1}}}},
		{name: "data max timetick", in: Batch{Kind: KindData, Term: 1, Messages: []Message{
			{Type: TypeData, VChannel: "v", TimeTick: 1<<64 - 2}, {Type: TypeData, VChannel: "v", TimeTick: 1<<64 - 1}}}},
		{name: "empty props and payload normalize to nil", in: Batch{Kind: KindData, Term: 1, Messages: []Message{
			{Type: TypeInsert, VChannel: "v", TimeTick: 5, Properties: map[string]string{}, Payload: []byte{}}}},
			want: &Batch{Kind: KindData, Term: 1, Messages: []Message{{Type: TypeInsert, VChannel: "v", TimeTick: 5}}}},
		{name: "every optional field", in: Batch{Kind: KindData, Term: 9, Offset: 1 << 40, Nonce: testNonce, Messages: []Message{{
			Type: TypeBroadcast, VChannel: "coll-7-v3", TimeTick: tt0, TxnID: 1<<64 - 1,
			Key:         IdemKey{Producer: "producer-ü", Epoch: 1<<64 - 1, Seq: 300},
			Properties:  map[string]string{"z": "", "a": "1", "é": "ünïcode", "m": strings.Repeat("x", 200)},
			Payload:     bytes.Repeat([]byte{0, 1, 0xff}, 100),
			BroadcastID: "bcast-0190d1c2",
		}}}},
		{name: "empty property value", in: Batch{Kind: KindData, Messages: []Message{
			{Type: TypeFlush, VChannel: "v", TimeTick: 3, Properties: map[string]string{"k": ""}}}}},
		{name: "max strings", in: Batch{Kind: KindData, Messages: []Message{{
			Type: TypeData, VChannel: strings.Repeat("v", MaxStringLen), TimeTick: 3,
			Key:         IdemKey{Producer: strings.Repeat("p", MaxStringLen)},
			Properties:  map[string]string{strings.Repeat("k", MaxStringLen): strings.Repeat("w", MaxStringLen)},
			BroadcastID: strings.Repeat("b", MaxStringLen),
		}}}},
		{name: "key with zero epoch and seq", in: Batch{Kind: KindData, Messages: []Message{
			{Type: TypeData, VChannel: "v", TimeTick: 3, Key: IdemKey{Producer: "p"}}}}},
		{name: "timetick message without vchannel", in: Batch{Kind: KindData, Messages: []Message{
			{Type: TypeTimeTick, TimeTick: tt0}}}},
		{name: "transaction", in: Batch{Kind: KindData, Term: 4, Offset: 99, Nonce: testNonce, Messages: []Message{
			{Type: TypeTxnBegin, VChannel: "v0", TimeTick: tt0 + 1, TxnID: 77},
			{Type: TypeInsert, VChannel: "v0", TimeTick: tt0 + 2, TxnID: 77, Payload: []byte("row")},
			{Type: TypeDelete, VChannel: "v0", TimeTick: tt0 + 3, TxnID: 77, Payload: []byte("pk")},
			{Type: TypeTxnCommit, VChannel: "v0", TimeTick: tt0 + 4, TxnID: 77},
			{Type: TypeTxnRollback, VChannel: "v1", TimeTick: tt0 + 5, TxnID: 78},
		}}},
		{name: "many properties (heap sort path)", in: Batch{Kind: KindData, Messages: []Message{
			{Type: TypeData, VChannel: "v", TimeTick: 1, Properties: manyProps(100)}}}},
	}
	// One message of every type.
	var all Batch
	all.Kind = KindData
	for i, typ := range allMessageTypes() {
		m := Message{Type: typ, VChannel: "v", TimeTick: tt0 + uint64(i), Payload: []byte(typ.String())}
		if typ.isTxnControl() {
			m.TxnID = 5
		}
		if typ == TypeBroadcast {
			m.BroadcastID = "b"
		}
		all.Messages = append(all.Messages, m)
	}
	cases = append(cases, struct {
		name string
		in   Batch
		want *Batch
	}{name: "every message type", in: all})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.in
			if c.want != nil {
				want = *c.want
			}
			enc, err := c.in.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := DecodeBatch(enc)
			if err != nil {
				t.Fatalf("DecodeBatch: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
			h, err := DecodeHeader(enc)
			if err != nil {
				t.Fatalf("DecodeHeader: %v", err)
			}
			wantH := Header{Version: FormatVersion, Kind: want.Kind, Term: want.Term, Offset: want.Offset, Nonce: want.Nonce,
				FirstTimeTick: want.FirstTimeTick(), LastTimeTick: want.LastTimeTick(), Count: uint32(len(want.Messages))}
			if h != wantH {
				t.Fatalf("header:\n got %+v\nwant %+v", h, wantH)
			}
			// DecodeHeader also works on the header alone (a ranged GET).
			if h2, err := DecodeHeader(enc[:HeaderSize]); err != nil || h2 != wantH {
				t.Fatalf("DecodeHeader(first %d bytes) = %+v, %v", HeaderSize, h2, err)
			}
			// AppendEncode appends after what dst holds.
			prefix := []byte("prefix")
			app, err := c.in.AppendEncode(append([]byte(nil), prefix...))
			if err != nil || !bytes.HasPrefix(app, prefix) || !bytes.Equal(app[len(prefix):], enc) {
				t.Fatalf("AppendEncode with a prefix: err %v, bytes differ from Encode", err)
			}
			// Re-encoding the decoded batch gives the same bytes.
			again, err := got.Encode()
			if err != nil || !bytes.Equal(again, enc) {
				t.Fatalf("re-encode: err %v, equal %v", err, bytes.Equal(again, enc))
			}
		})
	}
}

func TestCodecDecodedPayloadIsACopy(t *testing.T) {
	b := Batch{Kind: KindData, Messages: []Message{
		{Type: TypeData, VChannel: "v", TimeTick: 1, Payload: []byte("one")},
		{Type: TypeData, VChannel: "v", TimeTick: 2, Payload: []byte("two")},
	}}
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(enc)
	if err != nil {
		t.Fatal(err)
	}
	clear(enc)
	if string(got.Messages[0].Payload) != "one" || string(got.Messages[1].Payload) != "two" {
		t.Fatalf("payloads changed with the input buffer: %q %q", got.Messages[0].Payload, got.Messages[1].Payload)
	}
	// Appending to one payload must not overwrite the next.
	_ = append(got.Messages[0].Payload, 'X')
	if string(got.Messages[1].Payload) != "two" {
		t.Fatalf("append to payload 0 overwrote payload 1: %q", got.Messages[1].Payload)
	}
}

// TestCodecAliasingDecodeSharesThePayloads: DecodeBatchAliasing's payloads
// are data itself (a change of data shows through, so its caller must give
// data up), each capped so that appending to one does not overwrite the next.
func TestCodecAliasingDecodeSharesThePayloads(t *testing.T) {
	b := Batch{Kind: KindData, Messages: []Message{
		{Type: TypeData, VChannel: "v", TimeTick: 1, Payload: []byte("one")},
		{Type: TypeData, VChannel: "v", TimeTick: 2, Payload: []byte("two")},
	}}
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatchAliasing(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Messages, b.Messages) {
		t.Fatalf("decoded %+v, want %+v", got.Messages, b.Messages)
	}
	enc[bytes.Index(enc, []byte("two"))] = 'T'
	if string(got.Messages[1].Payload) != "Two" {
		t.Fatalf("payload 1 is %q after its byte in data changed: not data itself", got.Messages[1].Payload)
	}
	_ = append(got.Messages[0].Payload, 'X')
	if string(got.Messages[1].Payload) != "Two" {
		t.Fatalf("append to payload 0 overwrote payload 1: %q", got.Messages[1].Payload)
	}
}

func TestCodecMessageTypeNames(t *testing.T) {
	for _, typ := range allMessageTypes() {
		got, err := ParseMessageType(typ.String())
		if err != nil || got != typ {
			t.Errorf("ParseMessageType(%q) = %v, %v; want %v", typ.String(), got, err, uint8(typ))
		}
		if got, err := ParseMessageType(strings.ToUpper(typ.String())); err != nil || got != typ {
			t.Errorf("ParseMessageType(%q) = %v, %v", strings.ToUpper(typ.String()), got, err)
		}
		if want := typ <= TypeDelete; typ.IsData() != want {
			t.Errorf("%v.IsData() = %v", typ, typ.IsData())
		}
	}
	for _, s := range []string{"", "bogus", "MessageType(4)", "data "} {
		if _, err := ParseMessageType(s); err == nil {
			t.Errorf("ParseMessageType(%q) succeeded", s)
		}
	}
	if s := MessageType(99).String(); s != "MessageType(99)" {
		t.Errorf("MessageType(99).String() = %q", s)
	}
	if MessageType(0).IsData() || MessageType(4).IsData() || TypeTimeTick.IsData() {
		t.Error("IsData true for a non-data type")
	}
	kinds := map[BatchKind]string{KindData: "data", KindFence: "fence", KindFiller: "filler", KindTombstone: "tombstone", 0: "BatchKind(0)", 5: "BatchKind(5)"}
	for k, want := range kinds {
		if k.String() != want {
			t.Errorf("BatchKind(%d).String() = %q, want %q", uint8(k), k.String(), want)
		}
	}
}

func TestCodecTimeTicks(t *testing.T) {
	b := Batch{Kind: KindData, Messages: []Message{{TimeTick: 4}, {TimeTick: 9}}}
	if b.FirstTimeTick() != 4 || b.LastTimeTick() != 9 {
		t.Fatalf("First/LastTimeTick = %d, %d", b.FirstTimeTick(), b.LastTimeTick())
	}
	var empty Batch
	if empty.FirstTimeTick() != 0 || empty.LastTimeTick() != 0 {
		t.Fatal("timeticks of an empty batch are not 0")
	}
	if !(IdemKey{}).IsZero() || (IdemKey{Producer: "p"}).IsZero() {
		t.Fatal("IdemKey.IsZero")
	}
}

// ---------------------------------------------------------------------------
// Deterministic encoding

func TestCodecDeterministic(t *testing.T) {
	mk := func(props map[string]string) Batch {
		return Batch{Kind: KindData, Term: 3, Messages: []Message{
			{Type: TypeData, VChannel: "v", TimeTick: 1, Properties: props},
			{Type: TypeData, VChannel: "v", TimeTick: 2, Properties: map[string]string{"b": "2", "a": "1"}},
		}}
	}
	src := manyProps(40)
	ref := mk(src)
	want, err := ref.Encode()
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	for i := 0; i < 50; i++ {
		// A fresh map filled in another order (stride 7 is coprime to 40).
		props := make(map[string]string)
		for j := range keys {
			k := keys[(j*7+i)%len(keys)]
			props[k] = src[k]
		}
		b := mk(props)
		got, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("iteration %d: encoding depends on map order", i)
		}
	}
	// nil and empty encode alike.
	a := Batch{Kind: KindData, Messages: []Message{{Type: TypeData, VChannel: "v", TimeTick: 1}}}
	e := Batch{Kind: KindData, Messages: []Message{{Type: TypeData, VChannel: "v", TimeTick: 1, Properties: map[string]string{}, Payload: []byte{}}}}
	ab, _ := a.Encode()
	eb, _ := e.Encode()
	if !bytes.Equal(ab, eb) {
		t.Fatal("nil and empty Properties/Payload encode differently")
	}
}

func TestCodecAppendEncodeReusesBuffer(t *testing.T) {
	b := benchBatch()
	buf, err := b.AppendEncode(nil)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		buf, err = b.AppendEncode(buf[:0])
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("AppendEncode into a large enough buffer allocates %v times per call, want 0", allocs)
	}
}

// ---------------------------------------------------------------------------
// Encode validation

func TestCodecEncodeRejects(t *testing.T) {
	msg := func(mod func(m *Message)) Batch {
		m := Message{Type: TypeInsert, VChannel: "v", TimeTick: 10}
		mod(&m)
		return Batch{Kind: KindData, Term: 1, Messages: []Message{m}}
	}
	cases := []struct {
		name     string
		b        Batch
		tooLarge bool
		want     string // substring of the error
	}{
		{"unknown kind 0", Batch{Kind: 0}, false, "unknown batch kind 0"},
		{"unknown kind 5", Batch{Kind: 5}, false, "unknown batch kind 5"},
		{"fence with messages", Batch{Kind: KindFence, Messages: []Message{{Type: TypeData, VChannel: "v", TimeTick: 1}}}, false, "carries no messages"},
		{"filler with messages", Batch{Kind: KindFiller, Messages: []Message{{Type: TypeData, VChannel: "v", TimeTick: 1}}}, false, "carries no messages"},
		{"tombstone with messages", Batch{Kind: KindTombstone, Messages: []Message{{Type: TypeData, VChannel: "v", TimeTick: 1}}}, false, "carries no messages"},
		{"data without messages", Batch{Kind: KindData}, false, "at least one message"},
		{"unknown type 0", msg(func(m *Message) { m.Type = 0 }), false, "unknown message type 0"},
		{"unknown type 4", msg(func(m *Message) { m.Type = 4 }), false, "unknown message type 4"},
		{"unknown type 24", msg(func(m *Message) { m.Type = 24 }), false, "unknown message type 24"},
		{"timetick 0", msg(func(m *Message) { m.TimeTick = 0 }), false, "timetick 0"},
		{"no vchannel", msg(func(m *Message) { m.VChannel = "" }), false, "no vchannel"},
		{"txn begin without id", msg(func(m *Message) { m.Type = TypeTxnBegin }), false, "no transaction ID"},
		{"txn commit without id", msg(func(m *Message) { m.Type = TypeTxnCommit }), false, "no transaction ID"},
		{"txn rollback without id", msg(func(m *Message) { m.Type = TypeTxnRollback }), false, "no transaction ID"},
		{"broadcast without id", msg(func(m *Message) { m.Type = TypeBroadcast }), false, "no broadcast ID"},
		{"key without producer", msg(func(m *Message) { m.Key = IdemKey{Seq: 1} }), false, "no producer"},
		{"invalid utf8 vchannel", msg(func(m *Message) { m.VChannel = "v\xff" }), false, "not valid UTF-8"},
		{"invalid utf8 producer", msg(func(m *Message) { m.Key.Producer = "\xc3" }), false, "not valid UTF-8"},
		{"invalid utf8 broadcast id", msg(func(m *Message) { m.BroadcastID = "\xed\xa0\x80" }), false, "not valid UTF-8"},
		{"invalid utf8 property key", msg(func(m *Message) { m.Properties = map[string]string{"\xff": "v"} }), false, "not valid UTF-8"},
		{"invalid utf8 property value", msg(func(m *Message) { m.Properties = map[string]string{"k": "\xff"} }), false, "not valid UTF-8"},
		{"empty property key", msg(func(m *Message) { m.Properties = map[string]string{"": "v"} }), false, "empty property key"},
		{"long vchannel", msg(func(m *Message) { m.VChannel = strings.Repeat("v", MaxStringLen+1) }), true, "vchannel is 65537 bytes"},
		{"long producer", msg(func(m *Message) { m.Key.Producer = strings.Repeat("p", MaxStringLen+1) }), true, "producer"},
		{"long broadcast id", msg(func(m *Message) { m.BroadcastID = strings.Repeat("b", MaxStringLen+1) }), true, "broadcast ID"},
		{"long property key", msg(func(m *Message) { m.Properties = map[string]string{strings.Repeat("k", MaxStringLen+1): ""} }), true, "property key"},
		{"long property value", msg(func(m *Message) { m.Properties = map[string]string{"k": strings.Repeat("v", MaxStringLen+1)} }), true, "property value"},
		{"batch over MaxBatchBytes", overLimit(), true, "batch over 67108864 bytes at message 63"},
		{"equal timeticks", Batch{Kind: KindData, Messages: []Message{
			{Type: TypeData, VChannel: "v", TimeTick: 5}, {Type: TypeData, VChannel: "v", TimeTick: 5}}}, false, "not above the previous"},
		{"decreasing timeticks", Batch{Kind: KindData, Messages: []Message{
			{Type: TypeData, VChannel: "v", TimeTick: 6}, {Type: TypeData, VChannel: "v", TimeTick: 5}}}, false, "not above the previous"},
		{"bad second message", Batch{Kind: KindData, Messages: []Message{
			{Type: TypeData, VChannel: "v", TimeTick: 5}, {Type: TypeData, TimeTick: 6}}}, false, "message 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := c.b.AppendEncode(dst)
			if err == nil {
				t.Fatal("AppendEncode succeeded")
			}
			if string(out) != "keep" {
				t.Errorf("on error dst = %q, want it unchanged", out)
			}
			if errors.Is(err, ErrTooLarge) != c.tooLarge {
				t.Errorf("errors.Is(err, ErrTooLarge) = %v, want %v: %v", !c.tooLarge, c.tooLarge, err)
			}
			if errors.Is(err, ErrCorrupt) {
				t.Errorf("encode error wraps ErrCorrupt: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "segmentlog: encode ") {
				t.Errorf("error %q, want it to start with \"segmentlog: encode \" and contain %q", err, c.want)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Decode validation. Objects are built byte by byte with the helpers at the
// end of this file; seal computes body_len and the CRC so that each case
// reaches the rule it is about.

func TestCodecDecodeRejects(t *testing.T) {
	tt := tt0
	ins := func(parts ...any) []byte { // an insert message at tt on "v" with the given tail
		return raw(append([]any{byte(TypeInsert), byte(0), tt, str("v")}, parts...)...)
	}
	okBody := ins(uv(0), uv(0))
	data1 := func(body []byte) []byte { return seal(KindData, 1, tt, tt, body) }
	good := data1(okBody)
	if _, err := DecodeBatch(good); err != nil {
		t.Fatalf("baseline does not decode: %v", err)
	}
	withHeader := func(mod func(h []byte)) []byte {
		d := bytes.Clone(good)
		mod(d)
		return reseal(d)
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		// Framing.
		{"nil", nil, "truncated header"},
		{"empty", []byte{}, "truncated header"},
		{"header only", good[:HeaderSize], "truncated: 64 bytes"},
		{"missing crc", good[:len(good)-TrailerSize], "truncated"},
		{"one byte short", good[:len(good)-1], "truncated"},
		{"trailing byte", append(bytes.Clone(good), 0), "1 bytes after the end"},
		{"bad magic", withHeader(func(h []byte) { copy(h, "CWAX") }), `bad magic "CWAX"`},
		{"lowercase magic", withHeader(func(h []byte) { copy(h, "cwal") }), "bad magic"},
		{"version 0", withHeader(func(h []byte) { h[offVersion] = 0 }), "unsupported version 0"},
		{"version 2", withHeader(func(h []byte) { h[offVersion] = 2 }), "unsupported version 2"},
		{"version 255", withHeader(func(h []byte) { h[offVersion] = 255 }), "unsupported version 255"},
		{"version 2 short", []byte("CWAL\x02"), "unsupported version 2"},
		{"crc mismatch", func() []byte { d := bytes.Clone(good); d[len(d)-1] ^= 1; return d }(), "checksum mismatch"},
		{"body_len over limit", func() []byte {
			d := bytes.Clone(good)
			binary.LittleEndian.PutUint32(d[offBodyLen:], 1<<32-1)
			return d
		}(), "over the limit"},
		{"body_len too small", func() []byte {
			d := bytes.Clone(good)
			binary.LittleEndian.PutUint32(d[offBodyLen:], 1)
			return d
		}(), "after the end"},
		{"body_len too large", func() []byte {
			d := bytes.Clone(good)
			binary.LittleEndian.PutUint32(d[offBodyLen:], uint32(len(okBody)+1))
			return d
		}(), "truncated"},
		// Header fields.
		{"header flags", withHeader(func(h []byte) { h[offFlags] = 1 }), "unknown header flags"},
		{"header flags high", withHeader(func(h []byte) { h[offFlags+1] = 0x80 }), "unknown header flags"},
		{"kind 0", withHeader(func(h []byte) { h[offKind] = 0 }), "unknown batch kind 0"},
		{"kind 5", withHeader(func(h []byte) { h[offKind] = 5 }), "unknown batch kind 5"},
		{"fence with a message", seal(KindFence, 1, tt, tt, okBody), "want none"},
		{"fence with body bytes", seal(KindFence, 0, 0, 0, []byte{0}), "want none"},
		{"fence with timeticks", seal(KindFence, 0, 1, 1, nil), "want none"},
		{"filler with a message", seal(KindFiller, 1, tt, tt, okBody), "want none"},
		{"tombstone with a message", seal(KindTombstone, 1, tt, tt, okBody), "want none"},
		{"data with no messages", seal(KindData, 0, 0, 0, nil), "no messages"},
		{"count over MaxMessages", seal(KindData, MaxMessages+1, 1, 1<<40, okBody), "limit"},
		{"huge count tiny body", seal(KindData, 1<<32-1, 1, 1<<40, okBody), "limit"},
		{"count cannot fit", seal(KindData, 2, tt, tt+1, okBody), "cannot fit"},
		{"first timetick 0", seal(KindData, 1, 0, 0, okBody), "first timetick is 0"},
		{"last below first", seal(KindData, 1, tt, tt-1, okBody), "cannot hold"},
		{"range too narrow", seal(KindData, 2, tt, tt, append(bytes.Clone(okBody), okBody...)), "cannot hold"},
		{"header timeticks differ", seal(KindData, 1, tt+1, tt+1, okBody), "header timeticks"},
		// Messages.
		{"type 0", data1(raw(byte(0), byte(0), tt, str("v"), uv(0), uv(0))), "unknown message type 0"},
		{"type 4", data1(raw(byte(4), byte(0), tt, str("v"), uv(0), uv(0))), "unknown message type 4"},
		{"type 15", data1(raw(byte(15), byte(0), tt, str("v"), uv(0), uv(0))), "unknown message type 15"},
		{"type 24", data1(raw(byte(24), byte(0), tt, str("v"), uv(0), uv(0))), "unknown message type 24"},
		{"type 255", data1(raw(byte(255), byte(0), tt, str("v"), uv(0), uv(0))), "unknown message type 255"},
		{"unknown message flag", data1(raw(byte(TypeInsert), byte(8), tt, str("v"), uv(0), uv(0))), "unknown message flags 0x08"},
		{"all message flags", data1(raw(byte(TypeInsert), byte(0xff), tt, str("v"), uv(0), uv(0))), "unknown message flags"},
		{"message timetick 0", seal(KindData, 1, 1, 1, raw(byte(TypeInsert), byte(0), uint64(0), str("v"), uv(0), uv(0))), "has timetick 0"},
		{"empty vchannel", data1(raw(byte(TypeInsert), byte(0), tt, str(""), uv(0), uv(0))), "no vchannel"},
		{"vchannel invalid utf8", data1(raw(byte(TypeInsert), byte(0), tt, str("\xff"), uv(0), uv(0))), "not valid UTF-8"},
		{"vchannel over limit", data1(raw(byte(TypeInsert), byte(0), tt, str(strings.Repeat("v", MaxStringLen+1)), uv(0), uv(0))), "over the limit 65536"},
		{"vchannel length past end", data1(raw(byte(TypeInsert), byte(0), tt, uv(100), "vv", uv(0), uv(0))), "length 100 but"},
		{"vchannel length overflows", data1(raw(byte(TypeInsert), byte(0), tt, bytes.Repeat([]byte{0xff}, 10), byte(1))), "overflows"},
		{"vchannel length huge", data1(raw(byte(TypeInsert), byte(0), tt, uv(1<<63), uv(0), uv(0))), "over the limit"},
		{"non-minimal uvarint", data1(raw(byte(TypeInsert), byte(0), tt, []byte{0x81, 0x00}, "v", uv(0), uv(0))), "shortest form"},
		{"non-minimal zero", data1(raw(byte(TypeInsert), byte(0), tt, str("v"), []byte{0x80, 0x00}, uv(0))), "shortest form"},
		{"txn flag with id 0", data1(raw(byte(TypeInsert), byte(msgFlagTxn), tt, str("v"), uint64(0), uv(0), uv(0))), "transaction ID 0"},
		{"txn id truncated", data1(raw(byte(TypeInsert), byte(msgFlagTxn), tt, str("v"), []byte{1, 2, 3})), "truncated"},
		{"txn begin without id", data1(raw(byte(TypeTxnBegin), byte(0), tt, str("v"), uv(0), uv(0))), "no transaction ID"},
		{"key flag empty producer", data1(raw(byte(TypeInsert), byte(msgFlagKey), tt, str("v"), str(""), uv(1), uv(1), uv(0), uv(0))), "empty producer"},
		{"producer invalid utf8", data1(raw(byte(TypeInsert), byte(msgFlagKey), tt, str("v"), str("\xc0\xaf"), uv(1), uv(1), uv(0), uv(0))), "not valid UTF-8"},
		{"broadcast flag empty id", data1(raw(byte(TypeInsert), byte(msgFlagBroadcast), tt, str("v"), str(""), uv(0), uv(0))), "empty broadcast ID"},
		{"broadcast type without id", data1(raw(byte(TypeBroadcast), byte(0), tt, str("v"), uv(0), uv(0))), "no broadcast ID"},
		{"property count huge", data1(ins(uv(1<<62), uv(0))), "property count"},
		{"property count past end", data1(ins(uv(2), str("a"), str("1"), uv(0))), "property count 2 but 5 bytes left"},
		{"empty property key", data1(ins(uv(1), str(""), str("x"), uv(0))), "empty property key"},
		{"duplicate property keys", data1(ins(uv(2), str("a"), str("1"), str("a"), str("2"), uv(0))), "unique and sorted"},
		{"unsorted property keys", data1(ins(uv(2), str("b"), str("1"), str("a"), str("2"), uv(0))), "unique and sorted"},
		{"property value invalid utf8", data1(ins(uv(1), str("a"), str("\xff"), uv(0))), "not valid UTF-8"},
		{"property value missing", data1(ins(uv(1), str("ab"))), "property value: truncated"},
		{"payload past end", data1(ins(uv(0), uv(10), "abc")), "length 10 but 3 bytes left"},
		{"payload length missing", data1(ins(uv(0))), "payload: truncated"},
		{"bytes after last message", data1(ins(uv(0), uv(0), byte(0))), "1 bytes after the last message"},
		{"second message missing", seal(KindData, 2, tt, tt+1, append(bytes.Clone(okBody), make([]byte, 13)...)), "message 1"},
		{"equal timeticks", seal(KindData, 2, tt, tt+1, append(bytes.Clone(okBody), okBody...)), "not above the previous"},
		{"decreasing timeticks", seal(KindData, 2, tt-1, tt, append(bytes.Clone(okBody),
			raw(byte(TypeInsert), byte(0), tt-1, str("v"), uv(0), uv(0))...)), "not above the previous"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeBatch(c.data)
			if err == nil {
				t.Fatal("DecodeBatch succeeded")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			if errors.Is(err, ErrTooLarge) {
				t.Errorf("decode error wraps ErrTooLarge: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestCodecDecodeHeader(t *testing.T) {
	b := sampleBatch()
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := Header{Version: 1, Kind: KindData, Term: b.Term, Offset: b.Offset, Nonce: b.Nonce,
		FirstTimeTick: b.FirstTimeTick(), LastTimeTick: b.LastTimeTick(), Count: uint32(len(b.Messages))}
	// Any prefix of at least HeaderSize bytes, the whole object included.
	for n := HeaderSize; n <= len(enc); n++ {
		if h, err := DecodeHeader(enc[:n]); err != nil || h != want {
			t.Fatalf("DecodeHeader(%d of %d bytes) = %+v, %v", n, len(enc), h, err)
		}
	}
	for n := 0; n < HeaderSize; n++ {
		if _, err := DecodeHeader(enc[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("DecodeHeader(%d bytes) = %v, want ErrCorrupt", n, err)
		}
	}
	if _, err := DecodeHeader(append(bytes.Clone(enc), 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DecodeHeader with a trailing byte = %v, want ErrCorrupt", err)
	}
	// The CRC is not DecodeHeader's business.
	bad := bytes.Clone(enc)
	bad[len(bad)-1] ^= 0xff
	if _, err := DecodeHeader(bad); err != nil {
		t.Fatalf("DecodeHeader checks the CRC: %v", err)
	}
	v2 := bytes.Clone(enc)
	v2[offVersion] = 2
	if _, err := DecodeHeader(v2); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "unsupported version 2") {
		t.Fatalf("DecodeHeader(version 2) = %v", err)
	}
}

// ---------------------------------------------------------------------------
// Corruption detection

// TestCodecEverySingleByteChange changes every byte of a small encoded batch
// to every other value. CRC-32C detects every error burst of up to 32 bits,
// so each of them must fail to decode.
func TestCodecEverySingleByteChange(t *testing.T) {
	b := sampleBatch()
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(enc))
	n := 0
	for i := range enc {
		for x := 1; x < 256; x++ {
			copy(buf, enc)
			buf[i] ^= byte(x)
			if _, err := DecodeBatch(buf); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d ^= %#02x: DecodeBatch = %v, want ErrCorrupt", i, x, err)
			}
			n++
		}
	}
	t.Logf("%d single-byte changes of a %d-byte batch, all detected", n, len(enc))
}

func TestCodecEveryTruncation(t *testing.T) {
	for _, b := range []Batch{sampleBatch(), {Kind: KindFence, Term: 1}} {
		enc, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(enc); n++ {
			if _, err := DecodeBatch(enc[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v batch cut to %d of %d bytes: DecodeBatch = %v, want ErrCorrupt", b.Kind, n, len(enc), err)
			}
		}
	}
}

// TestCodecAllocationBound feeds objects whose counts and lengths promise far
// more than the bytes hold, with valid CRCs so that decoding reaches them,
// and checks that DecodeBatch allocates in proportion to the input.
func TestCodecAllocationBound(t *testing.T) {
	tt := tt0
	manyTiny := func() []byte { // the most messages and properties a body can hold
		var body []byte
		const n = 2000
		for i := 0; i < n; i++ {
			body = append(body, raw(byte(TypeData), byte(0), tt+uint64(i), str("v"), uv(0), uv(0))...)
		}
		return seal(KindData, n, tt, tt+n-1, body)
	}
	manyProps := func() []byte {
		parts := []any{byte(TypeData), byte(0), tt, str("v"), uv(5000)}
		for i := 0; i < 5000; i++ {
			parts = append(parts, str(fmt.Sprintf("%04d", i)), str(""))
		}
		return seal(KindData, 1, tt, tt, raw(append(parts, uv(0))...))
	}
	cases := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"zero body, most messages", seal(KindData, 1000, 1, 1000, make([]byte, 13*1000)), false},
		{"property count 2^62", seal(KindData, 1, tt, tt, raw(byte(TypeData), byte(0), tt, str("v"), uv(1<<62), make([]byte, 100))), false},
		{"property count fits bytes, keys empty", seal(KindData, 1, tt, tt, raw(byte(TypeData), byte(0), tt, str("v"), uv(3000), make([]byte, 9000))), false},
		{"string length 2^40", seal(KindData, 1, tt, tt, raw(byte(TypeData), byte(0), tt, uv(1<<40), make([]byte, 100))), false},
		{"payload length 2^60", seal(KindData, 1, tt, tt, raw(byte(TypeData), byte(0), tt, str("v"), uv(0), uv(1<<60), make([]byte, 100))), false},
		{"valid, 2000 tiny messages", manyTiny(), true},
		{"valid, 5000 properties", manyProps(), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			got := allocatedBytes(func() { _, err = DecodeBatch(c.data) })
			if (err == nil) != c.ok {
				t.Fatalf("DecodeBatch error = %v, want ok = %v", err, c.ok)
			}
			if limit := uint64(32*len(c.data) + 64<<10); got > limit {
				t.Fatalf("DecodeBatch of %d bytes allocated %d bytes, limit %d", len(c.data), got, limit)
			}
			t.Logf("%d input bytes, %d allocated (%.1fx)", len(c.data), got, float64(got)/float64(len(c.data)))
		})
	}
}

func allocatedBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// ---------------------------------------------------------------------------
// Golden files: the v1 wire format never changes in place.

// goldenBatches are canonical batches whose encodings are kept in
// testdata/batch-v1-NAME.bin, with an annotated dump in .txt. Add cases;
// never change one.
func goldenBatches() []struct {
	name string
	b    Batch
} {
	return []struct {
		name string
		b    Batch
	}{
		{"fence", Batch{Kind: KindFence, Term: 7, Offset: 1000, Nonce: testNonce}},
		{"filler", Batch{Kind: KindFiller, Term: 7, Offset: 1001, Nonce: testNonce}},
		{"tombstone", Batch{Kind: KindTombstone, Term: 6, Offset: 1002, Nonce: testNonce}},
		{"data-one-insert", Batch{Kind: KindData, Term: 7, Offset: 1008, Nonce: testNonce, Messages: []Message{
			{Type: TypeInsert, VChannel: "coll-1-v0", TimeTick: tt0, Payload: []byte("hello, cairn")},
		}}},
		{"data-txn-keys-props", Batch{Kind: KindData, Term: 7, Offset: 1009, Nonce: testNonce, Messages: []Message{
			{Type: TypeTxnBegin, VChannel: "coll-1-v0", TimeTick: tt0 + 1, TxnID: 42},
			{Type: TypeInsert, VChannel: "coll-1-v0", TimeTick: tt0 + 2, TxnID: 42,
				Key:        IdemKey{Producer: "prod-a", Epoch: 3, Seq: 1000},
				Properties: map[string]string{"schema": "v2", "codec": "arrow", "trace-id": "4bf92f35"},
				Payload:    []byte{0x00, 0x01, 0x02, 0xfe, 0xff}},
			{Type: TypeDelete, VChannel: "coll-1-v0", TimeTick: tt0 + 3, TxnID: 42,
				Key: IdemKey{Producer: "prod-a", Epoch: 3, Seq: 1001}, Payload: []byte("pk=17")},
			{Type: TypeTxnCommit, VChannel: "coll-1-v0", TimeTick: tt0 + 4, TxnID: 42},
		}}},
		{"data-control", Batch{Kind: KindData, Term: 8, Offset: 2000, Nonce: testNonce, Messages: []Message{
			{Type: TypeCreateVChannel, VChannel: "coll-2-v0", TimeTick: tt0 + 1<<18, Properties: map[string]string{"collection": "coll-2"}},
			{Type: TypeData, VChannel: "coll-2-v0", TimeTick: tt0 + 1<<18 + 1, Properties: map[string]string{"note": "ünïcödé ✓"}, Payload: []byte("raw")},
			{Type: TypeTxnBegin, VChannel: "coll-2-v0", TimeTick: tt0 + 1<<18 + 2, TxnID: 1<<64 - 1},
			{Type: TypeTxnRollback, VChannel: "coll-2-v0", TimeTick: tt0 + 1<<18 + 3, TxnID: 1<<64 - 1},
			{Type: TypeBroadcast, VChannel: "coll-2-v0", TimeTick: tt0 + 1<<18 + 4, BroadcastID: "0190d1c2-bcast", Payload: []byte("{}")},
			{Type: TypeFlush, VChannel: "coll-2-v0", TimeTick: tt0 + 1<<18 + 5},
			{Type: TypeDropVChannel, VChannel: "coll-2-v0", TimeTick: tt0 + 1<<18 + 6, BroadcastID: "0190d1c2-drop"},
			{Type: TypeTimeTick, TimeTick: tt0 + 2<<18},
		}}},
	}
}

const goldenPrefix = "batch-v1-"

func TestGolden(t *testing.T) {
	for _, c := range goldenBatches() {
		t.Run(c.name, func(t *testing.T) {
			enc, err := c.b.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			dump, err := dumpBatch(c.name, enc)
			if err != nil {
				t.Fatalf("dump: %v", err)
			}
			binPath := filepath.Join("testdata", goldenPrefix+c.name+".bin")
			txtPath := filepath.Join("testdata", goldenPrefix+c.name+".txt")
			if *updateGolden {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(binPath, enc, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(txtPath, []byte(dump), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			wantBin, err := os.ReadFile(binPath)
			if err != nil {
				t.Fatalf("%v (create with: go test ./segmentlog -run Golden -update)", err)
			}
			if !bytes.Equal(enc, wantBin) {
				i := 0
				for i < len(enc) && i < len(wantBin) && enc[i] == wantBin[i] {
					i++
				}
				t.Fatalf("the encoding of %s changed at byte %d (%d bytes now, %d in %s).\n"+
					"The v1 format never changes in place: add a new version instead.\ngot dump:\n%s",
					c.name, i, len(enc), len(wantBin), binPath, dump)
			}
			wantTxt, err := os.ReadFile(txtPath)
			if err != nil {
				t.Fatal(err)
			}
			if string(wantTxt) != dump {
				t.Fatalf("%s differs from the dump of its bytes; regenerate with -update.\ngot:\n%s", txtPath, dump)
			}
			got, err := DecodeBatch(wantBin)
			if err != nil {
				t.Fatalf("DecodeBatch(%s): %v", binPath, err)
			}
			if !reflect.DeepEqual(got, c.b) {
				t.Fatalf("DecodeBatch(%s):\n got %+v\nwant %+v", binPath, got, c.b)
			}
		})
	}
}

// TestGoldenFilesDecode checks every golden object on disk, so that deleting
// a case from goldenBatches does not silently drop its guard.
func TestGoldenFilesDecode(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", goldenPrefix+"*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, c := range goldenBatches() {
		known[goldenPrefix+c.name+".bin"] = true
	}
	if len(files) == 0 {
		t.Fatal("no golden files in testdata/")
	}
	for _, f := range files {
		if !known[filepath.Base(f)] {
			t.Errorf("%s has no case in goldenBatches: golden files are never removed", f)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := DecodeBatch(data)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		again, err := b.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Errorf("%s: re-encoding gives other bytes (err %v)", f, err)
		}
	}
}

// dumpBatch annotates every byte of an encoded v1 batch. It reads the bytes
// on its own, without the decoder, as a second reading of the format.
func dumpBatch(name string, data []byte) (string, error) {
	d := &dumper{data: data}
	fmt.Fprintf(&d.out, "# segmentlog batch, format v1: %s (%d bytes)\n", name, len(data))
	fmt.Fprintf(&d.out, "# generated by TestGolden; regenerate: go test ./segmentlog -run Golden -update\n")
	fmt.Fprintf(&d.out, "# offset  bytes (hex)%37s field\n", "")
	if len(data) < HeaderSize+TrailerSize {
		return "", errors.New("too short")
	}
	d.field(4, fmt.Sprintf("magic %q", data[:4]))
	d.field(1, fmt.Sprintf("version %d", data[4]))
	d.field(1, fmt.Sprintf("kind %d (%v)", data[5], BatchKind(data[5])))
	d.field(2, fmt.Sprintf("flags %d", binary.LittleEndian.Uint16(data[6:])))
	d.field(8, fmt.Sprintf("term %d", binary.LittleEndian.Uint64(data[8:])))
	d.field(8, fmt.Sprintf("offset %d", binary.LittleEndian.Uint64(data[16:])))
	d.field(16, fmt.Sprintf("nonce %x-%x-%x-%x-%x", data[24:28], data[28:30], data[30:32], data[32:34], data[34:40]))
	d.field(8, "first_tt "+ttString(binary.LittleEndian.Uint64(data[40:])))
	d.field(8, "last_tt "+ttString(binary.LittleEndian.Uint64(data[48:])))
	count := binary.LittleEndian.Uint32(data[56:])
	d.field(4, fmt.Sprintf("count %d", count))
	d.field(4, fmt.Sprintf("body_len %d", binary.LittleEndian.Uint32(data[60:])))
	for i := uint32(0); i < count && d.err == nil; i++ {
		fmt.Fprintf(&d.out, "# message %d\n", i)
		d.field(1, fmt.Sprintf("  type %d (%v)", d.peek(), MessageType(d.peek())))
		flags := d.peek()
		d.field(1, fmt.Sprintf("  flags %#03b", flags))
		d.field(8, "  timetick "+ttString(d.peekU64()))
		d.str("  vchannel")
		if flags&msgFlagTxn != 0 {
			d.field(8, fmt.Sprintf("  txn_id %d", d.peekU64()))
		}
		if flags&msgFlagKey != 0 {
			d.str("  key.producer")
			d.uvarint("  key.epoch")
			d.uvarint("  key.seq")
		}
		if flags&msgFlagBroadcast != 0 {
			d.str("  broadcast_id")
		}
		for n := d.uvarint("  property count"); n > 0 && d.err == nil; n-- {
			d.str("    key")
			d.str("    value")
		}
		n := d.uvarint("  payload length")
		d.field(int(n), "  payload "+printable(d.data[d.pos:min(d.pos+int(n), len(d.data))]))
	}
	if d.err == nil && d.pos+4 <= len(data) {
		d.field(4, fmt.Sprintf("crc32c %#08x", binary.LittleEndian.Uint32(data[d.pos:])))
	}
	if d.err == nil && d.pos != len(data) {
		d.err = fmt.Errorf("%d bytes left over", len(data)-d.pos)
	}
	return d.out.String(), d.err
}

type dumper struct {
	data []byte
	pos  int
	out  strings.Builder
	err  error
}

func (d *dumper) peek() byte {
	if d.pos >= len(d.data) {
		return 0
	}
	return d.data[d.pos]
}

func (d *dumper) peekU64() uint64 {
	if d.pos+8 > len(d.data) {
		return 0
	}
	return binary.LittleEndian.Uint64(d.data[d.pos:])
}

// field prints the next n bytes, 16 to a line, with label on the first.
func (d *dumper) field(n int, label string) {
	if d.err != nil {
		return
	}
	if n < 0 || d.pos+n > len(d.data) {
		d.err = fmt.Errorf("%s: %d bytes past the end", label, n)
		return
	}
	for i := 0; i < n; i += 16 {
		chunk := d.data[d.pos+i : d.pos+min(i+16, n)]
		hex := strings.TrimSpace(fmt.Sprintf("% x", chunk))
		if i == 0 {
			fmt.Fprintf(&d.out, "%08x  %-47s  %s\n", d.pos+i, hex, label)
		} else {
			fmt.Fprintf(&d.out, "%08x  %s\n", d.pos+i, hex)
		}
	}
	d.pos += n
}

func (d *dumper) uvarint(label string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.data[d.pos:])
	if n <= 0 {
		d.err = fmt.Errorf("%s: bad uvarint", label)
		return 0
	}
	d.field(n, fmt.Sprintf("%s %d", label, v))
	return v
}

func (d *dumper) str(label string) {
	n := d.uvarint(label + " length")
	if d.err == nil && d.pos+int(n) > len(d.data) {
		d.err = fmt.Errorf("%s: past the end", label)
	}
	if d.err == nil && n > 0 {
		d.field(int(n), fmt.Sprintf("%s %q", label, d.data[d.pos:d.pos+int(n)]))
	}
}

func ttString(tt uint64) string {
	if tt == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (physical %d ms, logical %d)", tt, tt>>18, tt&(1<<18-1))
}

func printable(b []byte) string {
	if len(b) == 0 {
		return "(none)"
	}
	if utf8.Valid(b) && !bytes.ContainsFunc(b, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("(%d binary bytes)", len(b))
}

// ---------------------------------------------------------------------------
// Example

func ExampleDecodeHeader() {
	b := Batch{Kind: KindData, Term: 3, Offset: 17, Messages: []Message{
		{Type: TypeInsert, VChannel: "coll-1-v0", TimeTick: 100, Payload: []byte("row")},
		{Type: TypeTimeTick, TimeTick: 105},
	}}
	buf, err := b.AppendEncode(nil)
	if err != nil {
		panic(err)
	}
	// A reader can filter on the first HeaderSize bytes alone.
	h, err := DecodeHeader(buf[:HeaderSize])
	fmt.Println(h.Kind, h.Term, h.Offset, h.Count, h.FirstTimeTick, h.LastTimeTick, err)
	got, err := DecodeBatch(buf)
	fmt.Println(got.Messages[0].Type, got.Messages[0].VChannel, string(got.Messages[0].Payload), got.Messages[1].Type, err)
	// Output:
	// data 3 17 2 100 105 <nil>
	// insert coll-1-v0 row timetick <nil>
}

// ---------------------------------------------------------------------------
// Benchmarks: a batch of 16 messages of 1 KiB.

func benchBatch() Batch {
	b := Batch{Kind: KindData, Term: 12, Offset: 123456, Nonce: testNonce}
	payload := bytes.Repeat([]byte("cairn-payload-01"), 64) // 1 KiB
	for i := 0; i < 16; i++ {
		b.Messages = append(b.Messages, Message{
			Type: TypeInsert, VChannel: "coll-1-v0", TimeTick: tt0 + uint64(i), TxnID: 0,
			Key:        IdemKey{Producer: "producer-1", Epoch: 2, Seq: uint64(1000 + i)},
			Properties: map[string]string{"trace-id": "4bf92f3577b34da6", "schema": "v3"},
			Payload:    payload,
		})
	}
	return b
}

func BenchmarkEncode(b *testing.B) {
	batch := benchBatch()
	buf, err := batch.AppendEncode(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf, err = batch.AppendEncode(buf[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	batch := benchBatch()
	buf, err := batch.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBatch(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeHeader(b *testing.B) {
	batch := benchBatch()
	buf, err := batch.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeHeader(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// ---------------------------------------------------------------------------
// Helpers

func allMessageTypes() []MessageType {
	var ts []MessageType
	for t := range messageTypeNames {
		if messageTypeNames[t] != "" {
			ts = append(ts, MessageType(t))
		}
	}
	return ts
}

// overLimit is a batch just over MaxBatchBytes that shares one 1 MiB
// payload among its messages, so the test does not allocate 64 MiB.
func overLimit() Batch {
	payload := make([]byte, 1<<20)
	b := Batch{Kind: KindData}
	for i := 0; i < 65; i++ {
		b.Messages = append(b.Messages, Message{Type: TypeData, VChannel: "v", TimeTick: uint64(i + 1), Payload: payload})
	}
	return b
}

func manyProps(n int) map[string]string {
	m := make(map[string]string, n)
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("key-%03d", i)] = fmt.Sprintf("value-%d", i*i)
	}
	return m
}

// sampleBatch is a small batch using every optional field, for exhaustive
// corruption tests.
func sampleBatch() Batch {
	return Batch{Kind: KindData, Term: 5, Offset: 77, Nonce: testNonce, Messages: []Message{
		{Type: TypeInsert, VChannel: "v0", TimeTick: tt0, TxnID: 9, Key: IdemKey{Producer: "p", Epoch: 1, Seq: 2},
			Properties: map[string]string{"a": "1", "b": "2"}, Payload: []byte("pay")},
		{Type: TypeBroadcast, VChannel: "v1", TimeTick: tt0 + 1, BroadcastID: "b1"},
		{Type: TypeTimeTick, TimeTick: tt0 + 2},
	}}
}

// Raw object builders for the decode tests.
type (
	uv  uint64 // encoded as a uvarint
	str string // encoded as uvarint length + bytes
)

// raw concatenates parts: byte → 1 byte, uint64 → 8 bytes little-endian,
// uv → uvarint, str → uvarint length + bytes, string and []byte → as is.
func raw(parts ...any) []byte {
	var out []byte
	for _, p := range parts {
		switch p := p.(type) {
		case byte:
			out = append(out, p)
		case uint64:
			out = binary.LittleEndian.AppendUint64(out, p)
		case uv:
			out = binary.AppendUvarint(out, uint64(p))
		case str:
			out = binary.AppendUvarint(out, uint64(len(p)))
			out = append(out, p...)
		case string:
			out = append(out, p...)
		case []byte:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("raw: unsupported part %T", p))
		}
	}
	return out
}

// seal wraps body in a v1 header with the given fields (term 1, offset 2,
// testNonce) and appends the CRC.
func seal(kind BatchKind, count uint32, first, last uint64, body []byte) []byte {
	h := make([]byte, HeaderSize)
	copy(h, magic)
	h[offVersion] = FormatVersion
	h[offKind] = byte(kind)
	binary.LittleEndian.PutUint64(h[offTerm:], 1)
	binary.LittleEndian.PutUint64(h[offOffset:], 2)
	copy(h[offNonce:], testNonce[:])
	binary.LittleEndian.PutUint64(h[offFirstTT:], first)
	binary.LittleEndian.PutUint64(h[offLastTT:], last)
	binary.LittleEndian.PutUint32(h[offCount:], count)
	return reseal(append(append(h, body...), 0, 0, 0, 0))
}

// reseal rewrites body_len and the CRC of an object of at least
// HeaderSize+TrailerSize bytes to match its length and content, so that a
// test or the fuzzer reaches the checks behind them.
func reseal(data []byte) []byte {
	binary.LittleEndian.PutUint32(data[offBodyLen:], uint32(len(data)-HeaderSize-TrailerSize))
	crcAt := len(data) - TrailerSize
	binary.LittleEndian.PutUint32(data[crcAt:], crc32.Checksum(data[:crcAt], crc32.MakeTable(crc32.Castagnoli)))
	return data
}
