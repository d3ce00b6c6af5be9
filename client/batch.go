package client

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cairnlog/cairn/functions/api/wire"
)

// contentTypeBatch is the binary append body: a batch object in the WAL's
// own encoding (format v1, drawn in the segmentlog package documentation).
// The server uses only its messages; term, offset, nonce and timeticks are
// its own. It costs the server no JSON or base64 and the client no base64.
const contentTypeBatch = wire.ContentTypeBatch

// The numbers of batch format v1 (segmentlog/codec.go; a test decodes what
// encodeBatch writes with segmentlog.DecodeBatch).
const (
	batchVersion    = 1
	batchKindData   = 1
	batchHeaderSize = 64
	batchMaxString  = 64 << 10
	msgFlagKey      = 1 << 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli) // read-only after init

// messageTypes are the codes of the message types an append may carry.
var messageTypes = map[string]byte{"": 1, "data": 1, "insert": 2, "delete": 3}

// encodeBatch appends the binary body of msgs to dst, or returns false if a
// message cannot go in one (an unknown type, no vchannel, a string over the
// format's limit or not UTF-8, an empty property key, a key with no
// producer): such an append goes as JSON, so that the server's answer names
// the fault as it does for JSON. Timeticks are 1, 2, 3...: the format wants
// them increasing, the server stamps its own.
//
// dst grows once, by the exact size of the body (batchSize): growing it
// message by message copied a MiB body several times over (8.8 % of the
// CPU of the bench's producer phase).
func encodeBatch(dst []byte, msgs []Message) ([]byte, bool) {
	start := len(dst)
	out := slices.Grow(dst, batchSize(msgs))
	out = append(out, make([]byte, batchHeaderSize)...)
	var props []string
	for i := range msgs {
		m := &msgs[i]
		typ, ok := messageTypes[m.Type]
		if !ok || m.VChannel == "" || !encodable(m.VChannel) {
			return dst, false
		}
		var flags byte
		if m.Key != nil && *m.Key != (Key{}) {
			if m.Key.Producer == "" || !encodable(m.Key.Producer) {
				return dst, false
			}
			flags |= msgFlagKey
		}
		out = append(out, typ, flags)
		out = binary.LittleEndian.AppendUint64(out, uint64(i+1))
		out = appendString(out, m.VChannel)
		if flags&msgFlagKey != 0 {
			out = appendString(out, m.Key.Producer)
			out = binary.AppendUvarint(out, m.Key.Epoch)
			out = binary.AppendUvarint(out, m.Key.Seq)
		}
		out = binary.AppendUvarint(out, uint64(len(m.Properties)))
		props = props[:0]
		for k, v := range m.Properties {
			if k == "" || !encodable(k) || !encodable(v) {
				return dst, false
			}
			props = append(props, k)
		}
		slices.SortFunc(props, strings.Compare)
		for _, k := range props {
			out = appendString(out, k)
			out = appendString(out, m.Properties[k])
		}
		out = binary.AppendUvarint(out, uint64(len(m.Payload)))
		out = append(out, m.Payload...)
	}
	h := out[start : start+batchHeaderSize]
	copy(h, "CWAL")
	h[4], h[5] = batchVersion, batchKindData
	// flags, term, offset and nonce stay 0.
	binary.LittleEndian.PutUint64(h[40:], 1)                 // first timetick
	binary.LittleEndian.PutUint64(h[48:], uint64(len(msgs))) // last timetick
	binary.LittleEndian.PutUint32(h[56:], uint32(len(msgs)))
	binary.LittleEndian.PutUint32(h[60:], uint32(len(out)-start-batchHeaderSize))
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out[start:], castagnoli)), true
}

// batchSize is the size of the body encodeBatch writes for msgs, if it
// writes one.
func batchSize(msgs []Message) int {
	n := batchHeaderSize + 4 // the CRC32C trailer
	for i := range msgs {
		m := &msgs[i]
		n += 1 + 1 + 8 + stringSize(m.VChannel) // type, flags, timetick, vchannel
		if m.Key != nil && *m.Key != (Key{}) {
			n += stringSize(m.Key.Producer) + uvarintSize(m.Key.Epoch) + uvarintSize(m.Key.Seq)
		}
		n += uvarintSize(uint64(len(m.Properties)))
		for k, v := range m.Properties {
			n += stringSize(k) + stringSize(v)
		}
		n += uvarintSize(uint64(len(m.Payload))) + len(m.Payload)
	}
	return n
}

func stringSize(s string) int { return uvarintSize(uint64(len(s))) + len(s) }

// uvarintSize is the length of the uvarint encoding of v.
func uvarintSize(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

func encodable(s string) bool { return len(s) <= batchMaxString && utf8.ValidString(s) }

func appendString(out []byte, s string) []byte {
	out = binary.AppendUvarint(out, uint64(len(s)))
	return append(out, s...)
}
