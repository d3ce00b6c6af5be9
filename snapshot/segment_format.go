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
// accept exactly the versions they know: 1 (segment_v1.go) and 2. A
// version's layout never changes in place (docs/segments.md).
const SegmentFormat = 2

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

// Column indices of the version 2 schema.
const (
	colVChannel = iota
	colOffset
	colIndex
	colTerm
	colTimeTick
	colTimestamp
	colType
	colTypeCode
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

// stringDict is the type of the dictionary-encoded string columns
// (vchannel, type): every record batch of a file shares one dictionary.
var stringDict = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}

var propertiesType = arrow.MapOf(arrow.BinaryTypes.String, arrow.BinaryTypes.String)

// segmentFields is the version 2 schema (without its metadata): one row per
// message, in ID order. docs/segments.md describes every field.
var segmentFields = []arrow.Field{
	colVChannel:   {Name: "vchannel", Type: stringDict},
	colOffset:     {Name: "offset", Type: arrow.PrimitiveTypes.Uint64},
	colIndex:      {Name: "index", Type: arrow.PrimitiveTypes.Uint32},
	colTerm:       {Name: "term", Type: arrow.PrimitiveTypes.Uint64},
	colTimeTick:   {Name: "timetick", Type: arrow.PrimitiveTypes.Uint64},
	colTimestamp:  {Name: "timestamp", Type: arrow.FixedWidthTypes.Timestamp_ms},
	colType:       {Name: "type", Type: stringDict},
	colTypeCode:   {Name: "type_code", Type: arrow.PrimitiveTypes.Uint8},
	colTxn:        {Name: "txn", Type: arrow.PrimitiveTypes.Uint64},
	colKey:        {Name: "key", Type: keyType, Nullable: true},
	colProperties: {Name: "properties", Type: propertiesType, Nullable: true},
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

// encodeSegment writes rows (in ID order; one vchannel's messages, or
// pchannel-wide ones with vchannel "") as an Arrow IPC file with
// zstd-compressed buffers. It returns the file and its CRC-32C.
func encodeSegment(pchannel, vchannel string, rows []segmentlog.Delivery) ([]byte, uint32, error) {
	return encodeSegmentWith(pchannel, vchannel, rows, ipc.WithZstd())
}

func encodeSegmentWith(pchannel, vchannel string, rows []segmentlog.Delivery, opts ...ipc.Option) ([]byte, uint32, error) {
	if len(rows) == 0 {
		return nil, 0, errors.New("snapshot: encode an empty segment")
	}
	schema := segmentSchema(pchannel, vchannel)
	mem := memory.NewGoAllocator()
	var buf seekBuffer
	w, err := ipc.NewFileWriter(&buf, append([]ipc.Option{ipc.WithSchema(schema), ipc.WithAllocator(mem)}, opts...)...)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot: encode segment: %w", err)
	}
	dicts := newSegmentDicts(mem, rows)
	defer dicts.release()
	for start := 0; start < len(rows); start += rowsPerRecord {
		end := min(start+rowsPerRecord, len(rows))
		rec := buildRecord(mem, schema, rows[start:end], dicts)
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

// segmentDicts are the dictionaries of one file: an IPC file allows one
// dictionary per column for all its record batches. Vchannels are sorted;
// type names are in the order of their codes.
type segmentDicts struct {
	vchannels, types arrow.Array
	vIndex           map[string]int32
	tIndex           map[segmentlog.MessageType]int32
}

func newSegmentDicts(mem memory.Allocator, rows []segmentlog.Delivery) *segmentDicts {
	var vs []string
	var ts []segmentlog.MessageType
	seenV := map[string]bool{}
	seenT := map[segmentlog.MessageType]bool{}
	for i := range rows {
		if v := rows[i].VChannel; !seenV[v] {
			seenV[v] = true
			vs = append(vs, v)
		}
		if t := rows[i].Type; !seenT[t] {
			seenT[t] = true
			ts = append(ts, t)
		}
	}
	slices.Sort(vs)
	slices.Sort(ts)
	d := &segmentDicts{vIndex: make(map[string]int32, len(vs)), tIndex: make(map[segmentlog.MessageType]int32, len(ts))}
	sb := array.NewStringBuilder(mem)
	defer sb.Release()
	for i, v := range vs {
		d.vIndex[v] = int32(i)
		sb.Append(v)
	}
	d.vchannels = sb.NewArray()
	for i, t := range ts {
		d.tIndex[t] = int32(i)
		sb.Append(t.String())
	}
	d.types = sb.NewArray()
	return d
}

func (d *segmentDicts) release() {
	d.vchannels.Release()
	d.types.Release()
}

// buildRecord builds one record batch of rows: with dicts, of the segment
// schema; without, of ExportSchema's (vchannel and type plain strings).
func buildRecord(mem memory.Allocator, schema *arrow.Schema, rows []segmentlog.Delivery, dicts *segmentDicts) arrow.Record {
	vIdx := array.NewInt32Builder(mem)
	tIdx := array.NewInt32Builder(mem)
	offB := array.NewUint64Builder(mem)
	idxB := array.NewUint32Builder(mem)
	termB := array.NewUint64Builder(mem)
	tickB := array.NewUint64Builder(mem)
	tsB := array.NewTimestampBuilder(mem, arrow.FixedWidthTypes.Timestamp_ms.(*arrow.TimestampType))
	codeB := array.NewUint8Builder(mem)
	txnB := array.NewUint64Builder(mem)
	keyB := array.NewStructBuilder(mem, keyType)
	prodB := keyB.FieldBuilder(0).(*array.StringBuilder)
	epochB := keyB.FieldBuilder(1).(*array.Uint64Builder)
	seqB := keyB.FieldBuilder(2).(*array.Uint64Builder)
	propB := array.NewMapBuilderWithType(mem, propertiesType)
	pkB := propB.KeyBuilder().(*array.StringBuilder)
	pvB := propB.ItemBuilder().(*array.StringBuilder)
	payB := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
	bcB := array.NewStringBuilder(mem)
	builders := []array.Builder{vIdx, tIdx, offB, idxB, termB, tickB, tsB, codeB, txnB, keyB, propB, payB, bcB}
	defer func() {
		for _, b := range builders {
			b.Release()
		}
	}()
	for _, b := range builders {
		b.Reserve(len(rows))
	}

	vStr, tStr := array.NewStringBuilder(mem), array.NewStringBuilder(mem)
	builders = append(builders, vStr, tStr)
	for i := range rows {
		r := &rows[i]
		if dicts != nil {
			vIdx.Append(dicts.vIndex[r.VChannel])
			tIdx.Append(dicts.tIndex[r.Type])
		} else {
			vStr.Append(r.VChannel)
			tStr.Append(r.Type.String())
		}
		offB.Append(r.ID.Offset)
		idxB.Append(r.ID.Index)
		termB.Append(r.Term)
		tickB.Append(r.TimeTick)
		tsB.Append(arrow.Timestamp(r.TimeTick >> segmentlog.LogicalBits))
		codeB.Append(uint8(r.Type))
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
	cols := make([]arrow.Array, numCols)
	if dicts != nil {
		vi, ti := vIdx.NewArray(), tIdx.NewArray()
		cols[colVChannel] = array.NewDictionaryArray(stringDict, vi, dicts.vchannels)
		cols[colType] = array.NewDictionaryArray(stringDict, ti, dicts.types)
		vi.Release()
		ti.Release()
	} else {
		cols[colVChannel], cols[colType] = vStr.NewArray(), tStr.NewArray()
	}
	for col, b := range map[int]array.Builder{colOffset: offB, colIndex: idxB, colTerm: termB, colTimeTick: tickB, colTimestamp: tsB,
		colTypeCode: codeB, colTxn: txnB, colKey: keyB, colProperties: propB, colPayload: payB, colBroadcast: bcB} {
		cols[col] = b.NewArray()
	}
	rec := array.NewRecord(schema, cols, int64(len(rows)))
	for _, c := range cols {
		c.Release()
	}
	return rec
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

// SegmentOverheadBytes is the fixed size of a segment file: that of a file
// holding one message with no payload, properties or key (schema, footer,
// dictionaries, the headers of every column's buffers). A flush round pays
// it once per file it writes (cairn bench's segment_overhead_bytes).
func SegmentOverheadBytes() int {
	rows := []segmentlog.Delivery{{ID: segmentlog.MessageID{Offset: 8}, Term: 1,
		Message: segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", TimeTick: 1 << segmentlog.LogicalBits}}}
	data, _, err := encodeSegment("p", "v", rows)
	if err != nil {
		panic(err) // a fixed row the encoder always takes
	}
	return len(data)
}
