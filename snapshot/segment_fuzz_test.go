package snapshot

import (
	"errors"
	"hash/crc32"
	"os"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/cairnlog/cairn/segmentlog"
)

// FuzzDecodeSegment checks that decodeSegment never panics or exhausts
// memory on any file, that every failure wraps ErrCorrupt, and that
// whatever decodes re-encodes (with the flusher's encoder) to a file that
// decodes to the same rows. The CRC is left out, so mutated files reach the
// Arrow reader; a second pass checks the CRC path with a stored checksum.
//
// The seeds are segments written by encodeSegment (zstd, as the flusher
// writes them), the same rows without compression (the mutator learns far
// more from plain buffers), an Arrow file of another schema, and fragments.
//
//	go test ./snapshot -run '^$' -fuzz FuzzDecodeSegment -fuzztime 1m
func FuzzDecodeSegment(f *testing.F) {
	for _, rows := range fuzzSegmentRows() {
		data, _, err := encodeSegment("p-1", rows[0].VChannel, rows)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(encodePlainSegment(f, rows))
	}
	f.Add(emptyPropertiesSegment(f))
	if v1, err := os.ReadFile(segmentV1Fixture); err == nil {
		f.Add(v1)
	}
	f.Add(foreignArrowFile(f))
	f.Add([]byte("ARROW1\x00\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := decodeSegment(data, "")
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// The stored checksum is checked before anything else.
		crc := strconv.FormatUint(uint64(crc32Of(data)^1), 10)
		if _, err := decodeSegment(data, crc); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("wrong checksum: got %v, want ErrCorrupt", err)
		}
		if len(rows) == 0 {
			return // the encoder writes no empty segment
		}
		again, _, err := encodeSegment("p-1", rows[0].VChannel, rows)
		if err != nil {
			t.Fatalf("decoded rows do not re-encode: %v", err)
		}
		back, err := decodeSegment(again, strconv.FormatUint(uint64(crc32Of(again)), 10))
		if err != nil {
			t.Fatalf("re-encoded segment does not decode: %v", err)
		}
		if !reflect.DeepEqual(back, rows) {
			t.Fatalf("round trip changed the rows:\n got %+v\nwant %+v", back, rows)
		}
	})
}

// fuzzSegmentRows are the seed segments: every column set and unset.
func fuzzSegmentRows() [][]segmentlog.Delivery {
	msg := func(off uint64, idx uint32, m segmentlog.Message) segmentlog.Delivery {
		return segmentlog.Delivery{ID: segmentlog.MessageID{Offset: off, Index: idx}, Term: 2, Message: m}
	}
	return [][]segmentlog.Delivery{
		{msg(0, 0, segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", TimeTick: 1, Payload: []byte("x")})},
		{
			msg(3, 0, segmentlog.Message{Type: segmentlog.TypeData, VChannel: "orders", TimeTick: 7, Payload: []byte("hello"),
				Key: segmentlog.IdemKey{Producer: "prod", Epoch: 1, Seq: 9}, Properties: map[string]string{"a": "1", "b": ""}}),
			msg(3, 1, segmentlog.Message{Type: segmentlog.TypeTxnCommit, VChannel: "orders", TimeTick: 8, TxnID: 4, BroadcastID: "bc-1"}),
			msg(5, 0, segmentlog.Message{Type: segmentlog.TypeData, VChannel: "orders", TimeTick: 9, Payload: make([]byte, 40)}),
		},
		{msg(1, 0, segmentlog.Message{Type: segmentlog.TypeTimeTick, TimeTick: 3})}, // pchannel-wide
	}
}

// encodePlainSegment writes rows as encodeSegment does, without compression.
func encodePlainSegment(tb testing.TB, rows []segmentlog.Delivery) []byte {
	tb.Helper()
	data, _, err := encodeSegmentWith("p-1", rows[0].VChannel, rows)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// emptyPropertiesSegment is a segment whose one row has a present but
// empty properties map, which the encoder never writes (it writes null).
func emptyPropertiesSegment(tb testing.TB) []byte {
	tb.Helper()
	rows := fuzzSegmentRows()[0]
	schema := segmentSchema("p-1", rows[0].VChannel)
	mem := memory.NewGoAllocator()
	dicts := newSegmentDicts(mem, rows)
	defer dicts.release()
	rec := buildRecord(mem, schema, rows, dicts)
	defer rec.Release()
	mb := array.NewMapBuilderWithType(mem, propertiesType)
	defer mb.Release()
	mb.Append(true)
	props := mb.NewArray()
	defer props.Release()
	cols := slices.Clone(rec.Columns())
	cols[colProperties] = props
	withEmpty := array.NewRecord(schema, cols, rec.NumRows())
	defer withEmpty.Release()
	return writePlain(tb, schema, withEmpty)
}

func writePlain(tb testing.TB, schema *arrow.Schema, rec arrow.Record) []byte {
	tb.Helper()
	var buf seekBuffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(memory.NewGoAllocator()))
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.b
}

// foreignArrowFile is a well-formed Arrow file of another schema.
func foreignArrowFile(tb testing.TB) []byte {
	tb.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "offset", Type: arrow.PrimitiveTypes.Int64}}, nil)
	mem := memory.NewGoAllocator()
	var buf seekBuffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err != nil {
		tb.Fatal(err)
	}
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.AppendValues([]int64{1, 2, 3}, nil)
	col := b.NewArray()
	defer col.Release()
	rec := array.NewRecord(schema, []arrow.Array{col}, 3)
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.b
}

func crc32Of(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// TestDecodeBudgetCompressible checks that the allocation budget of
// decodeSegment never refuses a file the encoder wrote, even one that
// compresses as well as zstd can (zero payloads).
func TestDecodeBudgetCompressible(t *testing.T) {
	rows := make([]segmentlog.Delivery, 64)
	for i := range rows {
		rows[i] = segmentlog.Delivery{ID: segmentlog.MessageID{Offset: uint64(i)}, Term: 1, Message: segmentlog.Message{
			Type: segmentlog.TypeData, VChannel: "v", TimeTick: uint64(i + 1), Payload: make([]byte, 1<<20),
		}}
	}
	data, crc, err := encodeSegment("p-1", "v", rows)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeSegment(data, strconv.FormatUint(uint64(crc), 10))
	if err != nil {
		t.Fatalf("a %d-byte file holding %d MiB of zeros: %v", len(data), len(rows), err)
	}
	if !reflect.DeepEqual(got, rows) {
		t.Fatal("rows changed in the round trip")
	}
	t.Logf("%d MiB of payload in a %d-byte file: ratio %d, budget ratio %d", len(rows), len(data), len(rows)<<20/len(data), zstdMaxRatio)
}
