package snapshot

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strconv"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/cairnlog/cairn/segmentlog"
)

// SegmentFormat is the version of the segment file layout this package
// writes, stored in the Arrow schema metadata under MetaFormat. Readers
// accept exactly the versions they know. The layout of version 1 (the
// schema below) never changes in place.
const SegmentFormat = 1

// Schema metadata keys of a segment file.
const (
	MetaFormat   = "cairn.segment.format"
	MetaPChannel = "cairn.pchannel"
	MetaVChannel = "cairn.vchannel" // "" for pchannel-wide messages
)

// crcMeta is the object metadata key holding the CRC-32C (Castagnoli) of the
// whole file, in decimal: Arrow IPC files carry no checksum of their own.
const crcMeta = "crc32c"

// rowsPerRecord bounds the rows of one Arrow record batch in a file, so a
// reader never needs one huge contiguous buffer per column.
const rowsPerRecord = 16 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Column indices of the version 1 schema.
const (
	colOffset = iota
	colIndex
	colTerm
	colTimeTick
	colType
	colTxn
	colKey
	colProperties
	colPayload
	colBroadcast
	numCols
)

var keyType = arrow.StructOf(
	arrow.Field{Name: "producer", Type: arrow.BinaryTypes.String},
	arrow.Field{Name: "epoch", Type: arrow.PrimitiveTypes.Uint64},
	arrow.Field{Name: "seq", Type: arrow.PrimitiveTypes.Uint64},
)

// segmentFields is the version 1 schema (without its metadata): one row per
// message, in ID order. See the package documentation.
var segmentFields = []arrow.Field{
	colOffset:     {Name: "offset", Type: arrow.PrimitiveTypes.Uint64},
	colIndex:      {Name: "index", Type: arrow.PrimitiveTypes.Uint32},
	colTerm:       {Name: "term", Type: arrow.PrimitiveTypes.Uint64},
	colTimeTick:   {Name: "timetick", Type: arrow.PrimitiveTypes.Uint64},
	colType:       {Name: "type", Type: arrow.PrimitiveTypes.Uint8},
	colTxn:        {Name: "txn", Type: arrow.PrimitiveTypes.Uint64},
	colKey:        {Name: "key", Type: keyType, Nullable: true},
	colProperties: {Name: "properties", Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.BinaryTypes.String), Nullable: true},
	colPayload:    {Name: "payload", Type: arrow.BinaryTypes.Binary},
	colBroadcast:  {Name: "broadcast_id", Type: arrow.BinaryTypes.String, Nullable: true},
}

func segmentSchema(pchannel, vchannel string) *arrow.Schema {
	md := arrow.NewMetadata(
		[]string{MetaFormat, MetaPChannel, MetaVChannel},
		[]string{strconv.Itoa(SegmentFormat), pchannel, vchannel},
	)
	return arrow.NewSchema(segmentFields, &md)
}

// encodeSegment writes rows (one vchannel's messages, in ID order) as an
// Arrow IPC file with zstd-compressed buffers. It returns the file and its
// CRC-32C.
func encodeSegment(pchannel, vchannel string, rows []segmentlog.Delivery) ([]byte, uint32, error) {
	if len(rows) == 0 {
		return nil, 0, errors.New("snapshot: encode an empty segment")
	}
	schema := segmentSchema(pchannel, vchannel)
	mem := memory.NewGoAllocator()
	var buf seekBuffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(mem), ipc.WithZstd())
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot: encode segment: %w", err)
	}
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for start := 0; start < len(rows); start += rowsPerRecord {
		end := min(start+rowsPerRecord, len(rows))
		appendRows(b, rows[start:end])
		rec := b.NewRecord()
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			return nil, 0, fmt.Errorf("snapshot: encode segment: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, 0, fmt.Errorf("snapshot: encode segment: %w", err)
	}
	return buf.b, crc32.Checksum(buf.b, castagnoli), nil
}

func appendRows(b *array.RecordBuilder, rows []segmentlog.Delivery) {
	offB := b.Field(colOffset).(*array.Uint64Builder)
	idxB := b.Field(colIndex).(*array.Uint32Builder)
	termB := b.Field(colTerm).(*array.Uint64Builder)
	tickB := b.Field(colTimeTick).(*array.Uint64Builder)
	typeB := b.Field(colType).(*array.Uint8Builder)
	txnB := b.Field(colTxn).(*array.Uint64Builder)
	keyB := b.Field(colKey).(*array.StructBuilder)
	prodB := keyB.FieldBuilder(0).(*array.StringBuilder)
	epochB := keyB.FieldBuilder(1).(*array.Uint64Builder)
	seqB := keyB.FieldBuilder(2).(*array.Uint64Builder)
	propB := b.Field(colProperties).(*array.MapBuilder)
	pkB := propB.KeyBuilder().(*array.StringBuilder)
	pvB := propB.ItemBuilder().(*array.StringBuilder)
	payB := b.Field(colPayload).(*array.BinaryBuilder)
	bcB := b.Field(colBroadcast).(*array.StringBuilder)

	for i := range rows {
		r := &rows[i]
		offB.Append(r.ID.Offset)
		idxB.Append(r.ID.Index)
		termB.Append(r.Term)
		tickB.Append(r.TimeTick)
		typeB.Append(uint8(r.Type))
		txnB.Append(r.TxnID)
		if r.Key.IsZero() {
			keyB.AppendNull()
		} else {
			keyB.Append(true)
			prodB.Append(r.Key.Producer)
			epochB.Append(r.Key.Epoch)
			seqB.Append(r.Key.Seq)
		}
		if len(r.Properties) == 0 {
			propB.AppendNull()
		} else {
			propB.Append(true)
			keys := make([]string, 0, len(r.Properties))
			for k := range r.Properties {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				pkB.Append(k)
				pvB.Append(r.Properties[k])
			}
		}
		payB.Append(r.Payload)
		if r.BroadcastID == "" {
			bcB.AppendNull()
		} else {
			bcB.Append(r.BroadcastID)
		}
	}
}

// seekBuffer is the in-memory io.WriteSeeker the Arrow file writer needs
// (it only asks for the current position).
type seekBuffer struct {
	b   []byte
	pos int64
}

func (s *seekBuffer) Write(p []byte) (int, error) {
	end := s.pos + int64(len(p))
	if end > int64(len(s.b)) {
		s.b = slices.Grow(s.b, int(end)-len(s.b))[:end]
	}
	copy(s.b[s.pos:], p)
	s.pos = end
	return len(p), nil
}

func (s *seekBuffer) Seek(off int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = off
	case io.SeekCurrent:
		abs = s.pos + off
	case io.SeekEnd:
		abs = int64(len(s.b)) + off
	default:
		return 0, fmt.Errorf("snapshot: seek: bad whence %d", whence)
	}
	if abs < 0 {
		return 0, errors.New("snapshot: seek before the start")
	}
	s.pos = abs
	return abs, nil
}
