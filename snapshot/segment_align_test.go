package snapshot

import (
	"encoding/binary"
	"fmt"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/cairnlog/cairn/segmentlog"
)

// Slots of the Arrow File.fbs, Message.fbs and Schema.fbs tables that
// bufferOffsets reads.
const (
	slotFooterDictionaries = 8  // Footer.dictionaries: [Block]
	slotFooterBatches      = 10 // Footer.recordBatches: [Block]
	slotMessageHeader      = 8  // Message.header
	slotBatchBuffers       = 8  // RecordBatch.buffers: [Buffer]
	slotDictBatchData      = 6  // DictionaryBatch.data: RecordBatch
	blockSize              = 24 // struct Block { offset: long; metaDataLength: int; bodyLength: long }
	bufferSize             = 16 // struct Buffer { offset: long; length: long }
)

// TestSegmentBuffersAligned: every message of a segment file, and every
// buffer in every message body, starts at a multiple of 8 bytes in the
// file (docs/segments.md), with real sizes: many record batches and
// dictionary batches.
func TestSegmentBuffersAligned(t *testing.T) {
	rows := make([]segmentlog.Delivery, 3*rowsPerRecord+5)
	for i := range rows {
		rows[i] = segmentlog.Delivery{ID: segmentlog.MessageID{Offset: uint64(8 + i/7), Index: uint32(i % 7)}, Term: 1, Message: segmentlog.Message{
			Type:     []segmentlog.MessageType{segmentlog.TypeData, segmentlog.TypeInsert, segmentlog.TypeTxnCommit}[i%3],
			VChannel: fmt.Sprintf("v%d", i%3), TimeTick: uint64(i+1) << segmentlog.LogicalBits, Payload: make([]byte, i%13),
		}}
		if i%5 == 0 {
			rows[i].Properties = map[string]string{"k": "v"}
		}
	}
	data, _, err := encodeSegment("p", "", rows)
	if err != nil {
		t.Fatal(err)
	}
	starts, err := bufferOffsets(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(starts) < 4*numCols {
		t.Fatalf("found %d buffers; want those of at least 4 record batches", len(starts))
	}
	t.Logf("%d message and buffer starts, the first %v", len(starts), starts[:8])
	for _, s := range starts {
		if s%8 != 0 {
			t.Fatalf("a buffer starts at byte %d of the file, not a multiple of 8 (of %d buffers)", s, len(starts))
		}
	}
}

// bufferOffsets returns where every message and every body buffer of an
// Arrow IPC file starts, in bytes from the file's start.
func bufferOffsets(data []byte) ([]int64, error) {
	n := int(binary.LittleEndian.Uint32(data[len(data)-arrowFileTrailerSz:]))
	fb := data[len(data)-arrowFileTrailerSz-n : len(data)-arrowFileTrailerSz]
	footer := flatbuffers.Table{Bytes: fb, Pos: flatbuffers.GetUOffsetT(fb)}
	var starts []int64
	for _, slot := range []flatbuffers.VOffsetT{slotFooterDictionaries, slotFooterBatches} {
		o := flatbuffers.UOffsetT(footer.Offset(slot))
		if o == 0 {
			continue
		}
		vec, count := footer.Vector(o), footer.VectorLen(o)
		for i := range count {
			at := int(vec) + i*blockSize
			off := int64(binary.LittleEndian.Uint64(fb[at:]))
			metaLen := int64(int32(binary.LittleEndian.Uint32(fb[at+8:])))
			starts = append(starts, off, off+metaLen) // the message, its body
			// The message: continuation marker, length, flatbuffer.
			msgBuf := data[off+8 : off+metaLen]
			msg := flatbuffers.Table{Bytes: msgBuf, Pos: flatbuffers.GetUOffsetT(msgBuf)}
			ho := flatbuffers.UOffsetT(msg.Offset(slotMessageHeader))
			if ho == 0 {
				return nil, fmt.Errorf("block %d: message without a header", i)
			}
			batch := flatbuffers.Table{Bytes: msgBuf, Pos: msg.Indirect(ho + msg.Pos)}
			if slot == slotFooterDictionaries {
				do := flatbuffers.UOffsetT(batch.Offset(slotDictBatchData))
				batch = flatbuffers.Table{Bytes: msgBuf, Pos: batch.Indirect(do + batch.Pos)}
			}
			bo := flatbuffers.UOffsetT(batch.Offset(slotBatchBuffers))
			bvec, bcount := batch.Vector(bo), batch.VectorLen(bo)
			for j := range bcount {
				starts = append(starts, off+metaLen+int64(binary.LittleEndian.Uint64(msgBuf[int(bvec)+j*bufferSize:])))
			}
		}
	}
	return starts, nil
}
