package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/cairnlog/cairn/segmentlog"
)

// decodeSegment reads a whole segment file back into deliveries, in file
// order. crc, when not empty, is the decimal CRC-32C stored with the object.
// Anything unexpected is an error wrapping ErrCorrupt: it never panics,
// whatever the bytes, and asks Arrow for no more memory than
// decodeBudget(len(data)) (FuzzDecodeSegment).
func decodeSegment(data []byte, crc string) (rows []segmentlog.Delivery, err error) {
	if crc != "" {
		want, perr := strconv.ParseUint(crc, 10, 32)
		if perr != nil {
			return nil, fmt.Errorf("%w: bad checksum metadata %q", ErrCorrupt, crc)
		}
		if got := crc32.Checksum(data, castagnoli); got != uint32(want) {
			return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, got, want)
		}
	}
	defer func() {
		// arrow-go's IPC reader reports a damaged record batch by panicking
		// (short reads, bad buffer indices; it re-panics what it recovers
		// itself), and the accessors panic on offsets it did not check. It
		// has no error-returning mode, so this boundary is where a damaged
		// file becomes ErrCorrupt instead of taking the process down.
		if r := recover(); r != nil {
			rows, err = nil, fmt.Errorf("%w: arrow: %v", ErrCorrupt, r)
		}
	}()
	if err := checkFooter(data); err != nil {
		return nil, err
	}
	mem := &budgetAllocator{mem: memory.NewGoAllocator(), left: decodeBudget(len(data))}
	fr, err := ipc.NewFileReader(bytes.NewReader(data), ipc.WithAllocator(mem))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	defer fr.Close()
	format, err := checkSchema(fr.Schema())
	if err != nil {
		return nil, err
	}
	vchannel, _ := fr.Schema().Metadata().GetValue(MetaVChannel)
	for i := 0; i < fr.NumRecords(); i++ {
		rec, err := fr.Record(i)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, i, err)
		}
		if format == 1 {
			rows, err = appendDecodedV1(rows, rec, vchannel)
		} else {
			rows, err = appendDecoded(rows, rec)
		}
		if err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// checkSchema accepts the schemas of formats 1 and 2 and says which.
func checkSchema(s *arrow.Schema) (int, error) {
	v, _ := s.Metadata().GetValue(MetaFormat)
	var fields []arrow.Field
	switch v {
	case "1":
		fields = segmentV1Fields
	case strconv.Itoa(SegmentFormat):
		fields = segmentFields
	default:
		return 0, fmt.Errorf("%w: unsupported segment format %q", ErrCorrupt, v)
	}
	if s.NumFields() != len(fields) {
		return 0, fmt.Errorf("%w: %d columns, want %d", ErrCorrupt, s.NumFields(), len(fields))
	}
	for i, f := range fields {
		if got := s.Field(i); got.Name != f.Name || !arrow.TypeEqual(got.Type, f.Type) {
			return 0, fmt.Errorf("%w: column %d is %s %s, want %s %s", ErrCorrupt, i, got.Name, got.Type, f.Name, f.Type)
		}
	}
	if v == "1" {
		return 1, nil
	}
	return SegmentFormat, nil
}

// appendDecoded appends the rows of one format 2 record batch.
func appendDecoded(rows []segmentlog.Delivery, rec arrow.Record) ([]segmentlog.Delivery, error) {
	vchA := rec.Column(colVChannel).(*array.Dictionary)
	vchD, ok := vchA.Dictionary().(*array.String)
	if !ok {
		return nil, fmt.Errorf("%w: vchannel dictionary is %s", ErrCorrupt, vchA.Dictionary().DataType())
	}
	offA := rec.Column(colOffset).(*array.Uint64)
	idxA := rec.Column(colIndex).(*array.Uint32)
	termA := rec.Column(colTerm).(*array.Uint64)
	tickA := rec.Column(colTimeTick).(*array.Uint64)
	tsA := rec.Column(colTimestamp).(*array.Timestamp)
	typeA := rec.Column(colType).(*array.Dictionary)
	typeD, ok := typeA.Dictionary().(*array.String)
	if !ok {
		return nil, fmt.Errorf("%w: type dictionary is %s", ErrCorrupt, typeA.Dictionary().DataType())
	}
	codeA := rec.Column(colTypeCode).(*array.Uint8)
	txnA := rec.Column(colTxn).(*array.Uint64)
	rest := restColumns{
		key:        rec.Column(colKey).(*array.Struct),
		properties: rec.Column(colProperties).(*array.Map),
		payload:    rec.Column(colPayload).(*array.Binary),
		broadcast:  rec.Column(colBroadcast).(*array.String),
	}
	lookup := func(a *array.Dictionary, d *array.String, i int, what string) (string, error) {
		if a.IsNull(i) {
			return "", fmt.Errorf("%w: row %d: null %s", ErrCorrupt, i, what)
		}
		j := a.GetValueIndex(i)
		if j < 0 || j >= d.Len() {
			return "", fmt.Errorf("%w: row %d: %s index %d outside its dictionary of %d", ErrCorrupt, i, what, j, d.Len())
		}
		return d.Value(j), nil
	}
	for i := 0; i < int(rec.NumRows()); i++ {
		d := segmentlog.Delivery{
			ID:   segmentlog.MessageID{Offset: offA.Value(i), Index: idxA.Value(i)},
			Term: termA.Value(i),
		}
		m := &d.Message
		var err error
		if m.VChannel, err = lookup(vchA, vchD, i, "vchannel"); err != nil {
			return nil, err
		}
		m.TimeTick = tickA.Value(i)
		if ts := int64(tsA.Value(i)); ts != int64(m.TimeTick>>segmentlog.LogicalBits) {
			return nil, fmt.Errorf("%w: row %d: timestamp %d is not that of timetick %d", ErrCorrupt, i, ts, m.TimeTick)
		}
		m.Type = segmentlog.MessageType(codeA.Value(i))
		name, err := lookup(typeA, typeD, i, "type")
		if err != nil {
			return nil, err
		}
		if name != m.Type.String() {
			return nil, fmt.Errorf("%w: row %d: type %q with code %d", ErrCorrupt, i, name, m.Type)
		}
		m.TxnID = txnA.Value(i)
		if err := rest.decode(i, m); err != nil {
			return nil, err
		}
		if rows, err = appendInOrder(rows, d); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// zstdMaxRatio bounds what one byte of a zstd frame decompresses to: a
// block holds at most 128 KiB and takes at least 4 bytes (an RLE block).
// LZ4, the other codec Arrow files may use, expands less.
const zstdMaxRatio = (128 << 10) / 4

// decodeBudget is how many bytes decoding a file of n bytes may ask the
// Arrow allocator for, in all: the file's own messages (at most n) plus
// every buffer decompressed (at most zstdMaxRatio times n), and slack for
// the allocator's rounding. No file the encoder writes comes near it; a
// buffer whose stored length claims more is a lie.
func decodeBudget(n int) int { return (zstdMaxRatio+1)*n + 1<<20 }

// errOverBudget is what budgetAllocator panics with; decodeSegment's
// recover turns it into ErrCorrupt.
var errOverBudget = errors.New("buffer lengths exceed what the file can hold")

// budgetAllocator hands out Go memory until its budget is spent, then
// panics. The Arrow reader sizes buffers from lengths stored in the file
// before reading them (metadata, bodies, decompressed buffers), so without
// it one forged length (found by FuzzDecodeSegment: an uncompressed size of
// 141 GB) ends the process with an out-of-memory fatal error, which no
// recover catches. Memory given back does not refill the budget. It is not
// safe for concurrent use; one decode owns it.
type budgetAllocator struct {
	mem  memory.Allocator
	left int
}

func (a *budgetAllocator) take(n int) {
	if n < 0 || n > a.left {
		panic(errOverBudget)
	}
	a.left -= n
}

func (a *budgetAllocator) Allocate(size int) []byte {
	a.take(size)
	return a.mem.Allocate(size)
}

func (a *budgetAllocator) Reallocate(size int, b []byte) []byte {
	if size < 0 {
		panic(errOverBudget)
	}
	a.take(max(size-len(b), 0))
	return a.mem.Reallocate(size, b)
}

func (a *budgetAllocator) Free(b []byte) { a.mem.Free(b) }
