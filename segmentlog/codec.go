package segmentlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"unicode/utf8"
)

// The v1 batch format is drawn in the package documentation (doc.go). The
// constants below are the only place its numbers live.

const (
	// FormatVersion is the version this package writes. Decoders accept
	// exactly the versions they know; v1 is the only one so far.
	FormatVersion = 1
	// HeaderSize is the size of the fixed header at the start of every
	// batch object. DecodeHeader needs this many bytes.
	HeaderSize = 64
	// TrailerSize is the size of the CRC32C trailer.
	TrailerSize = 4

	// MaxBatchBytes bounds an encoded batch object, header and trailer
	// included.
	MaxBatchBytes = 64 << 20
	// MaxMessages bounds the messages of one batch.
	MaxMessages = 1 << 20
	// MaxStringLen bounds every string of a message: vchannel, producer,
	// broadcast ID, property keys and values.
	MaxStringLen = 64 << 10
)

const magic = "CWAL"

// Byte offsets of the v1 header fields.
const (
	offMagic   = 0
	offVersion = 4
	offKind    = 5
	offFlags   = 6
	offTerm    = 8
	offOffset  = 16
	offNonce   = 24
	offFirstTT = 40
	offLastTT  = 48
	offCount   = 56
	offBodyLen = 60 // + 4 bytes == HeaderSize
)

// Message flag bits (v1). Any other bit set is corruption.
const (
	msgFlagTxn       = 1 << 0 // an 8-byte TxnID follows the vchannel
	msgFlagKey       = 1 << 1 // an idempotency key follows
	msgFlagBroadcast = 1 << 2 // a broadcast ID follows
	msgFlagsKnown    = msgFlagTxn | msgFlagKey | msgFlagBroadcast
)

// minMessageSize is the smallest encoded message: type, flags, timetick and
// three zero uvarints (vchannel length, property count, payload length). It
// bounds how many messages a body of a given length can hold.
const minMessageSize = 1 + 1 + 8 + 1 + 1 + 1

var (
	le          = binary.LittleEndian
	castagnoli  = crc32.MakeTable(crc32.Castagnoli)      // read-only after init
	_           = [1]struct{}{}[offBodyLen+4-HeaderSize] // compile-time: the header fields fill HeaderSize
	errInternal = errors.New("segmentlog: internal error: encoded size mismatch")
)

// Header is the fixed header of a batch object: what a reader needs to
// filter a batch (by term, kind or timetick range) without decoding its
// messages.
type Header struct {
	Version       uint8
	Kind          BatchKind
	Term, Offset  uint64
	Nonce         [16]byte
	FirstTimeTick uint64 // 0 if Count == 0
	LastTimeTick  uint64 // 0 if Count == 0
	Count         uint32 // number of messages
}

// invalidError is a broken validation rule. It is not ErrCorrupt by itself:
// encode reports it as is, decode wraps its text in ErrCorrupt. kind is
// ErrTooLarge for a broken size limit, nil otherwise.
type invalidError struct {
	msg  string
	kind error
}

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return e.kind }

func invalid(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...), kind: ErrTooLarge}
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Encode returns the encoding of b in a new slice. See AppendEncode.
func (b *Batch) Encode() ([]byte, error) { return b.AppendEncode(nil) }

// AppendEncode validates b and appends its encoding to dst. The encoding is
// deterministic: equal batches give equal bytes whatever the iteration order
// of their Properties maps, and nil and empty Properties or Payload give the
// same bytes. On error dst is returned unchanged; the error wraps
// ErrTooLarge if a limit is exceeded and describes the broken rule
// otherwise (see the package documentation for the rules).
//
// Append into a reused buffer (buf, err = b.AppendEncode(buf[:0])) to
// encode without allocating.
func (b *Batch) AppendEncode(dst []byte) ([]byte, error) {
	size, err := b.encodedSize()
	if err != nil {
		return dst, fmt.Errorf("segmentlog: encode %v batch term %d offset %d: %w", b.Kind, b.Term, b.Offset, err)
	}
	start := len(dst)
	out := slices.Grow(dst, size)[:start+HeaderSize]
	h := out[start:]
	copy(h[offMagic:], magic)
	h[offVersion] = FormatVersion
	h[offKind] = byte(b.Kind)
	le.PutUint16(h[offFlags:], 0)
	le.PutUint64(h[offTerm:], b.Term)
	le.PutUint64(h[offOffset:], b.Offset)
	copy(h[offNonce:offNonce+16], b.Nonce[:])
	le.PutUint64(h[offFirstTT:], b.FirstTimeTick())
	le.PutUint64(h[offLastTT:], b.LastTimeTick())
	le.PutUint32(h[offCount:], uint32(len(b.Messages)))
	le.PutUint32(h[offBodyLen:], uint32(size-HeaderSize-TrailerSize))

	var propsBuf [16]property // sorted properties; on the stack for small maps
	for i := range b.Messages {
		m := &b.Messages[i]
		out = appendMessageFixed(out, m)
		out = binary.AppendUvarint(out, uint64(len(m.Properties)))
		if len(m.Properties) > 0 {
			props := propsBuf[:0]
			for k, v := range m.Properties {
				props = append(props, property{k, v})
			}
			slices.SortFunc(props, func(a, b property) int { return strings.Compare(a.key, b.key) })
			for _, p := range props {
				out = appendString(out, p.key)
				out = appendString(out, p.value)
			}
		}
		out = binary.AppendUvarint(out, uint64(len(m.Payload)))
		out = append(out, m.Payload...)
	}
	out = le.AppendUint32(out, crc32.Checksum(out[start:], castagnoli))
	if len(out)-start != size {
		return dst, errInternal // encodedSize and the loop above disagree: a bug here
	}
	return out, nil
}

type property struct{ key, value string }

// appendMessageFixed appends the fields of m that come before its
// properties.
func appendMessageFixed(out []byte, m *Message) []byte {
	var flags byte
	if m.TxnID != 0 {
		flags |= msgFlagTxn
	}
	if !m.Key.IsZero() {
		flags |= msgFlagKey
	}
	if m.BroadcastID != "" {
		flags |= msgFlagBroadcast
	}
	out = append(out, byte(m.Type), flags)
	out = le.AppendUint64(out, m.TimeTick)
	out = appendString(out, m.VChannel)
	if flags&msgFlagTxn != 0 {
		out = le.AppendUint64(out, m.TxnID)
	}
	if flags&msgFlagKey != 0 {
		out = appendString(out, m.Key.Producer)
		out = binary.AppendUvarint(out, m.Key.Epoch)
		out = binary.AppendUvarint(out, m.Key.Seq)
	}
	if flags&msgFlagBroadcast != 0 {
		out = appendString(out, m.BroadcastID)
	}
	return out
}

func appendString(out []byte, s string) []byte {
	out = binary.AppendUvarint(out, uint64(len(s)))
	return append(out, s...)
}

// uvarintLen is the length of the uvarint encoding of v.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func stringLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

// encodedSize validates b and returns the size of its encoding.
func (b *Batch) encodedSize() (int, error) {
	if !b.Kind.valid() {
		return 0, invalid("unknown batch kind %d", uint8(b.Kind))
	}
	if b.Kind != KindData {
		if len(b.Messages) != 0 {
			return 0, invalid("a %v batch carries no messages, got %d", b.Kind, len(b.Messages))
		}
		return HeaderSize + TrailerSize, nil
	}
	if len(b.Messages) == 0 {
		return 0, invalid("a data batch carries at least one message")
	}
	if len(b.Messages) > MaxMessages {
		return 0, tooLarge("%d messages, limit %d", len(b.Messages), MaxMessages)
	}
	size := HeaderSize + TrailerSize
	for i := range b.Messages {
		m := &b.Messages[i]
		n, err := checkMessage(m)
		if err != nil {
			return 0, fmt.Errorf("message %d: %w", i, err)
		}
		if i > 0 && m.TimeTick <= b.Messages[i-1].TimeTick {
			return 0, invalid("message %d: timetick %d not above the previous one (%d)", i, m.TimeTick, b.Messages[i-1].TimeTick)
		}
		size += n
		if size > MaxBatchBytes {
			return 0, tooLarge("batch over %d bytes at message %d", MaxBatchBytes, i)
		}
	}
	return size, nil
}

// checkMessage checks the rules of one message that do not depend on its
// neighbours and returns the size of its encoding. Encode and decode share
// it, so whatever decodes re-encodes.
func checkMessage(m *Message) (int, error) {
	if !m.Type.valid() {
		return 0, invalid("unknown message type %d", uint8(m.Type))
	}
	if m.TimeTick == 0 {
		return 0, invalid("%v message has timetick 0", m.Type)
	}
	if m.VChannel == "" && m.Type != TypeTimeTick {
		return 0, invalid("%v message has no vchannel", m.Type)
	}
	if err := checkString("vchannel", m.VChannel); err != nil {
		return 0, err
	}
	n := 1 + 1 + 8 + stringLen(m.VChannel)
	if m.TxnID != 0 {
		n += 8
	} else if m.Type.isTxnControl() {
		return 0, invalid("%v message has no transaction ID", m.Type)
	}
	if !m.Key.IsZero() {
		if err := checkString("producer", m.Key.Producer); err != nil {
			return 0, err
		}
		n += stringLen(m.Key.Producer) + uvarintLen(m.Key.Epoch) + uvarintLen(m.Key.Seq)
	} else if m.Key.Epoch != 0 || m.Key.Seq != 0 {
		return 0, invalid("idempotency key has epoch %d seq %d but no producer", m.Key.Epoch, m.Key.Seq)
	}
	if m.BroadcastID != "" {
		if err := checkString("broadcast ID", m.BroadcastID); err != nil {
			return 0, err
		}
		n += stringLen(m.BroadcastID)
	} else if m.Type == TypeBroadcast {
		return 0, invalid("broadcast message has no broadcast ID")
	}
	n += uvarintLen(uint64(len(m.Properties)))
	for k, v := range m.Properties {
		if k == "" {
			return 0, invalid("empty property key")
		}
		if err := checkString("property key", k); err != nil {
			return 0, err
		}
		if err := checkString("property value", v); err != nil {
			return 0, err
		}
		n += stringLen(k) + stringLen(v)
	}
	n += uvarintLen(uint64(len(m.Payload))) + len(m.Payload)
	return n, nil
}

func checkString(what, s string) error {
	if len(s) > MaxStringLen {
		return tooLarge("%s is %d bytes, limit %d", what, len(s), MaxStringLen)
	}
	if !utf8.ValidString(s) {
		return invalid("%s %q is not valid UTF-8", what, s)
	}
	return nil
}

// DecodeHeader decodes the fixed header of a batch object. data is the
// whole object or any prefix of it at least HeaderSize bytes long (say, a
// ranged GET of the first HeaderSize bytes).
//
// DecodeHeader checks the magic, the version, that the declared size is
// within MaxBatchBytes and not below len(data), and that the header fields
// agree with each other. It does NOT verify the CRC, which covers the whole
// object: only DecodeBatch does. Every error wraps ErrCorrupt; an unknown
// version is reported as "unsupported version N".
func DecodeHeader(data []byte) (Header, error) {
	h, _, err := decodeHeader(data)
	return h, err
}

// decodeHeader decodes and checks the header and returns the body length.
func decodeHeader(data []byte) (Header, int, error) {
	if len(data) < HeaderSize {
		if len(data) >= offVersion+1 && string(data[:offVersion]) == magic && data[offVersion] != FormatVersion {
			return Header{}, 0, corrupt("unsupported version %d", data[offVersion])
		}
		return Header{}, 0, corrupt("truncated header: %d bytes, want %d", len(data), HeaderSize)
	}
	if string(data[offMagic:offMagic+4]) != magic {
		return Header{}, 0, corrupt("bad magic %q, want %q", data[offMagic:offMagic+4], magic)
	}
	if v := data[offVersion]; v != FormatVersion {
		return Header{}, 0, corrupt("unsupported version %d", v)
	}
	h := Header{
		Version:       data[offVersion],
		Kind:          BatchKind(data[offKind]),
		Term:          le.Uint64(data[offTerm:]),
		Offset:        le.Uint64(data[offOffset:]),
		FirstTimeTick: le.Uint64(data[offFirstTT:]),
		LastTimeTick:  le.Uint64(data[offLastTT:]),
		Count:         le.Uint32(data[offCount:]),
	}
	copy(h.Nonce[:], data[offNonce:offNonce+16])
	bodyLen := int(le.Uint32(data[offBodyLen:]))
	size := HeaderSize + bodyLen + TrailerSize
	if size > MaxBatchBytes {
		return Header{}, 0, corrupt("declared size %d bytes over the limit %d", size, MaxBatchBytes)
	}
	if len(data) > size {
		return Header{}, 0, corrupt("%d bytes after the end of the object (declared size %d)", len(data)-size, size)
	}
	if f := le.Uint16(data[offFlags:]); f != 0 {
		return Header{}, 0, corrupt("unknown header flags %#04x", f)
	}
	if err := checkHeader(&h, bodyLen); err != nil {
		return Header{}, 0, err
	}
	return h, bodyLen, nil
}

// checkHeader checks that the header fields agree with each other.
func checkHeader(h *Header, bodyLen int) error {
	if !h.Kind.valid() {
		return corrupt("unknown batch kind %d", uint8(h.Kind))
	}
	if h.Kind != KindData {
		if h.Count != 0 || h.FirstTimeTick != 0 || h.LastTimeTick != 0 || bodyLen != 0 {
			return corrupt("%v batch with %d messages, timeticks [%d, %d], %d body bytes; want none",
				h.Kind, h.Count, h.FirstTimeTick, h.LastTimeTick, bodyLen)
		}
		return nil
	}
	switch {
	case h.Count == 0:
		return corrupt("data batch with no messages")
	case h.Count > MaxMessages:
		return corrupt("%d messages, limit %d", h.Count, MaxMessages)
	case uint64(h.Count)*minMessageSize > uint64(bodyLen):
		return corrupt("%d messages cannot fit in %d body bytes", h.Count, bodyLen)
	case h.FirstTimeTick == 0:
		return corrupt("first timetick is 0")
	case h.LastTimeTick < h.FirstTimeTick || h.LastTimeTick-h.FirstTimeTick < uint64(h.Count-1):
		return corrupt("timetick range [%d, %d] cannot hold %d strictly increasing timeticks",
			h.FirstTimeTick, h.LastTimeTick, h.Count)
	}
	return nil
}

// DecodeBatch decodes a whole batch object, verifying its CRC and every
// rule of the format. Every error wraps ErrCorrupt. It never panics, and it
// allocates O(len(data)) memory whatever the counts and lengths inside say.
//
// The result shares no memory with data. Payloads of one batch share one
// backing array (each sliced with its own capacity). Empty Properties,
// Payload and Messages decode as nil.
func DecodeBatch(data []byte) (Batch, error) {
	return decodeBatch(data, false)
}

// DecodeBatchAliasing is DecodeBatch for a caller that gives data up: the
// payloads of the result are slices of data itself (each with its own
// capacity), not of a copy, so data must not change, nor its buffer be
// reused, while the batch or any message of it is in use — a Writer keeps
// appended payloads in its cache. It spares a copy of the batch where data
// is a fresh buffer of its own, as an HTTP append body is. Strings never
// alias data.
func DecodeBatchAliasing(data []byte) (Batch, error) {
	return decodeBatch(data, true)
}

// decodeBatch is DecodeBatch, with payloads in data itself if alias.
func decodeBatch(data []byte, alias bool) (Batch, error) {
	h, bodyLen, err := decodeHeader(data)
	if err != nil {
		return Batch{}, err
	}
	if size := HeaderSize + bodyLen + TrailerSize; len(data) != size {
		return Batch{}, corrupt("truncated: %d bytes, declared size %d", len(data), size)
	}
	crcAt := len(data) - TrailerSize
	if got, want := crc32.Checksum(data[:crcAt], castagnoli), le.Uint32(data[crcAt:]); got != want {
		return Batch{}, corrupt("checksum mismatch: computed %#08x, stored %#08x", got, want)
	}
	b := Batch{Kind: h.Kind, Term: h.Term, Offset: h.Offset, Nonce: h.Nonce}
	if h.Count == 0 {
		return b, nil
	}
	d := decoder{buf: data[HeaderSize:crcAt]}
	if alias {
		d.arena = d.buf
	}
	b.Messages = make([]Message, h.Count) // Count*minMessageSize <= bodyLen, checked
	for i := range b.Messages {
		m := &b.Messages[i]
		var prev *Message
		if i > 0 {
			prev = &b.Messages[i-1]
		}
		if err := d.message(m, prev); err != nil {
			return Batch{}, corrupt("message %d at body byte %d: %v", i, d.pos, err)
		}
		if _, err := checkMessage(m); err != nil {
			return Batch{}, corrupt("message %d: %v", i, err)
		}
		if prev != nil && m.TimeTick <= prev.TimeTick {
			return Batch{}, corrupt("message %d: timetick %d not above the previous one (%d)", i, m.TimeTick, prev.TimeTick)
		}
	}
	if d.pos != len(d.buf) {
		return Batch{}, corrupt("%d bytes after the last message", len(d.buf)-d.pos)
	}
	if first, last := b.FirstTimeTick(), b.LastTimeTick(); first != h.FirstTimeTick || last != h.LastTimeTick {
		return Batch{}, corrupt("header timeticks [%d, %d], messages [%d, %d]", h.FirstTimeTick, h.LastTimeTick, first, last)
	}
	return b, nil
}

// decoder reads a batch body. Its methods check every length against the
// bytes left before using it, so nothing is allocated on a length's say-so
// alone.
type decoder struct {
	buf   []byte
	pos   int
	arena []byte // what payloads slice: a copy of buf, made at the first non-empty payload, or buf itself
}

func (d *decoder) left() int { return len(d.buf) - d.pos }

func (d *decoder) u8(what string) (byte, error) {
	if d.left() < 1 {
		return 0, fmt.Errorf("%s: truncated", what)
	}
	v := d.buf[d.pos]
	d.pos++
	return v, nil
}

func (d *decoder) u64(what string) (uint64, error) {
	if d.left() < 8 {
		return 0, fmt.Errorf("%s: truncated", what)
	}
	v := le.Uint64(d.buf[d.pos:])
	d.pos += 8
	return v, nil
}

// uvarint reads a uvarint in its shortest form: a longer form would decode
// to a value that re-encodes to other bytes.
func (d *decoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.buf[d.pos:])
	switch {
	case n == 0:
		return 0, fmt.Errorf("%s: truncated", what)
	case n < 0:
		return 0, fmt.Errorf("%s: uvarint overflows 64 bits", what)
	case n > 1 && d.buf[d.pos+n-1] == 0:
		return 0, fmt.Errorf("%s: uvarint not in shortest form", what)
	}
	d.pos += n
	return v, nil
}

// bytes reads a uvarint length and that many bytes, at most max. The result
// aliases d.buf.
func (d *decoder) bytes(what string, max int) ([]byte, error) {
	n, err := d.uvarint(what)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%s: length %d over the limit %d", what, n, max)
	}
	if n > uint64(d.left()) {
		return nil, fmt.Errorf("%s: length %d but %d bytes left", what, n, d.left())
	}
	b := d.buf[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return b, nil
}

func (d *decoder) string(what string) (string, error) {
	b, err := d.bytes(what, MaxStringLen)
	return string(b), err
}

// message decodes one message into m. prev is the message before it (nil
// for the first) so that a repeated vchannel shares its string.
func (d *decoder) message(m *Message, prev *Message) error {
	t, err := d.u8("type")
	if err != nil {
		return err
	}
	m.Type = MessageType(t)
	flags, err := d.u8("flags")
	if err != nil {
		return err
	}
	if flags&^msgFlagsKnown != 0 {
		return fmt.Errorf("unknown message flags %#02x", flags&^msgFlagsKnown)
	}
	if m.TimeTick, err = d.u64("timetick"); err != nil {
		return err
	}
	vc, err := d.bytes("vchannel", MaxStringLen)
	if err != nil {
		return err
	}
	m.VChannel = reuse(vc, prev, func(p *Message) string { return p.VChannel })
	if flags&msgFlagTxn != 0 {
		if m.TxnID, err = d.u64("transaction ID"); err != nil {
			return err
		}
		if m.TxnID == 0 {
			return errors.New("transaction flag set with transaction ID 0")
		}
	}
	if flags&msgFlagKey != 0 {
		producer, err := d.bytes("producer", MaxStringLen)
		if err != nil {
			return err
		}
		m.Key.Producer = reuse(producer, prev, func(p *Message) string { return p.Key.Producer })
		if m.Key.Producer == "" {
			return errors.New("key flag set with an empty producer")
		}
		if m.Key.Epoch, err = d.uvarint("epoch"); err != nil {
			return err
		}
		if m.Key.Seq, err = d.uvarint("seq"); err != nil {
			return err
		}
	}
	if flags&msgFlagBroadcast != 0 {
		if m.BroadcastID, err = d.string("broadcast ID"); err != nil {
			return err
		}
		if m.BroadcastID == "" {
			return errors.New("broadcast flag set with an empty broadcast ID")
		}
	}
	if err := d.properties(m); err != nil {
		return err
	}
	payload, err := d.bytes("payload", MaxBatchBytes)
	if err != nil {
		return err
	}
	if len(payload) > 0 {
		if d.arena == nil {
			d.arena = bytes.Clone(d.buf)
		}
		start := d.pos - len(payload)
		m.Payload = d.arena[start:d.pos:d.pos]
	}
	return nil
}

// reuse returns string(b), sharing the string of the previous message's
// field when it is equal: consecutive messages usually have the same
// vchannel and producer.
func reuse(b []byte, prev *Message, field func(*Message) string) string {
	if prev != nil {
		if s := field(prev); s == string(b) { // the comparison does not allocate
			return s
		}
	}
	return string(b)
}

func (d *decoder) properties(m *Message) error {
	n, err := d.uvarint("property count")
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	// A property takes at least 3 bytes: a key length, a non-empty key and
	// a value length. The map grows as properties actually decode, so a
	// false count costs no memory.
	if n > uint64(d.left()/3) {
		return fmt.Errorf("property count %d but %d bytes left", n, d.left())
	}
	m.Properties = make(map[string]string, min(n, 8))
	var prevKey []byte
	for j := uint64(0); j < n; j++ {
		k, err := d.bytes("property key", MaxStringLen)
		if err != nil {
			return err
		}
		if len(k) == 0 {
			return errors.New("empty property key")
		}
		if j > 0 && bytes.Compare(prevKey, k) >= 0 {
			return fmt.Errorf("property key %q not after %q: keys must be unique and sorted", k, prevKey)
		}
		prevKey = k
		v, err := d.bytes("property value", MaxStringLen)
		if err != nil {
			return err
		}
		m.Properties[string(k)] = string(v)
	}
	return nil
}
