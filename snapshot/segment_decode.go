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
	if err := checkSchema(fr.Schema()); err != nil {
		return nil, err
	}
	vchannel, _ := fr.Schema().Metadata().GetValue(MetaVChannel)
	for i := 0; i < fr.NumRecords(); i++ {
		rec, err := fr.Record(i)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, i, err)
		}
		rows, err = appendDecoded(rows, rec, vchannel)
		if err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// checkSchema accepts only the version 1 schema.
func checkSchema(s *arrow.Schema) error {
	md := s.Metadata()
	if v, _ := md.GetValue(MetaFormat); v != strconv.Itoa(SegmentFormat) {
		return fmt.Errorf("%w: unsupported segment format %q", ErrCorrupt, v)
	}
	if s.NumFields() != numCols {
		return fmt.Errorf("%w: %d columns, want %d", ErrCorrupt, s.NumFields(), numCols)
	}
	for i, f := range segmentFields {
		if got := s.Field(i); got.Name != f.Name || !arrow.TypeEqual(got.Type, f.Type) {
			return fmt.Errorf("%w: column %d is %s %s, want %s %s", ErrCorrupt, i, got.Name, got.Type, f.Name, f.Type)
		}
	}
	return nil
}

func appendDecoded(rows []segmentlog.Delivery, rec arrow.Record, vchannel string) ([]segmentlog.Delivery, error) {
	offA := rec.Column(colOffset).(*array.Uint64)
	idxA := rec.Column(colIndex).(*array.Uint32)
	termA := rec.Column(colTerm).(*array.Uint64)
	tickA := rec.Column(colTimeTick).(*array.Uint64)
	typeA := rec.Column(colType).(*array.Uint8)
	txnA := rec.Column(colTxn).(*array.Uint64)
	keyA := rec.Column(colKey).(*array.Struct)
	prodA := keyA.Field(0).(*array.String)
	epochA := keyA.Field(1).(*array.Uint64)
	seqA := keyA.Field(2).(*array.Uint64)
	propA := rec.Column(colProperties).(*array.Map)
	pkA := propA.Keys().(*array.String)
	pvA := propA.Items().(*array.String)
	payA := rec.Column(colPayload).(*array.Binary)
	bcA := rec.Column(colBroadcast).(*array.String)

	for i := 0; i < int(rec.NumRows()); i++ {
		d := segmentlog.Delivery{
			ID:   segmentlog.MessageID{Offset: offA.Value(i), Index: idxA.Value(i)},
			Term: termA.Value(i),
		}
		m := &d.Message
		m.VChannel = vchannel
		m.TimeTick = tickA.Value(i)
		m.Type = segmentlog.MessageType(typeA.Value(i))
		m.TxnID = txnA.Value(i)
		if keyA.IsValid(i) {
			m.Key = segmentlog.IdemKey{Producer: prodA.Value(i), Epoch: epochA.Value(i), Seq: seqA.Value(i)}
		}
		if propA.IsValid(i) {
			start, end := propA.ValueOffsets(i)
			if start < 0 || end > int64(pkA.Len()) || start > end {
				return nil, fmt.Errorf("%w: properties of row %d out of range", ErrCorrupt, i)
			}
			if end > start { // an empty map decodes as none, as the encoder writes it
				m.Properties = make(map[string]string, end-start)
			}
			for j := start; j < end; j++ {
				m.Properties[pkA.Value(int(j))] = pvA.Value(int(j))
			}
		}
		if p := payA.Value(i); len(p) > 0 {
			m.Payload = bytes.Clone(p) // the record's buffers are released
		}
		if bcA.IsValid(i) {
			m.BroadcastID = bcA.Value(i)
		}
		if n := len(rows); n > 0 && !rows[n-1].ID.Less(d.ID) {
			return nil, fmt.Errorf("%w: row %v after %v: not in ID order", ErrCorrupt, d.ID, rows[n-1].ID)
		}
		rows = append(rows, d)
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
