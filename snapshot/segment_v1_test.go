package snapshot

import (
	"os"
	"reflect"
	"testing"

	"github.com/cairnlog/cairn/segmentlog"
)

// segmentV1Fixture is a segment file written by the format 1 encoder
// (Cairn before segment format 2), kept to prove that readers still read
// format 1 files. It is never rewritten: no encoder of format 1 is left.
const segmentV1Fixture = "testdata/segment-v1.arrow"

// segmentV1Rows are the rows of segmentV1Fixture, vchannel "v1" of
// pchannel "p1".
func segmentV1Rows() []segmentlog.Delivery {
	d := func(off uint64, idx uint32, m segmentlog.Message) segmentlog.Delivery {
		m.VChannel = "v1"
		return segmentlog.Delivery{ID: segmentlog.MessageID{Offset: off, Index: idx}, Term: 3, Message: m}
	}
	return []segmentlog.Delivery{
		d(8, 0, segmentlog.Message{Type: segmentlog.TypeCreateVChannel, TimeTick: 100 << 18}),
		d(9, 0, segmentlog.Message{Type: segmentlog.TypeInsert, TimeTick: 101 << 18, Payload: []byte("row-1"),
			Key: segmentlog.IdemKey{Producer: "prod", Epoch: 3, Seq: 1 << 60}}),
		d(9, 1, segmentlog.Message{Type: segmentlog.TypeDelete, TimeTick: 101<<18 | 1, Properties: map[string]string{"pk": "17", "éclair": "ü"}}),
		d(10, 0, segmentlog.Message{Type: segmentlog.TypeTxnBegin, TimeTick: 102 << 18, TxnID: 77}),
		d(10, 1, segmentlog.Message{Type: segmentlog.TypeData, TimeTick: 102<<18 | 1, TxnID: 77, Payload: []byte{0, 1, 2, 255}}),
		d(10, 2, segmentlog.Message{Type: segmentlog.TypeTxnCommit, TimeTick: 102<<18 | 2, TxnID: 77}),
		d(11, 0, segmentlog.Message{Type: segmentlog.TypeBroadcast, TimeTick: 103 << 18, BroadcastID: "bc-7", Payload: []byte("ddl")}),
	}
}

func TestDecodeSegmentV1Fixture(t *testing.T) {
	data, err := os.ReadFile(segmentV1Fixture)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := decodeSegment(data, "")
	if err != nil {
		t.Fatalf("decode a format 1 file: %v", err)
	}
	if want := segmentV1Rows(); !reflect.DeepEqual(rows, want) {
		t.Fatalf("format 1 file decodes to\n%+v\nwant\n%+v", rows, want)
	}
}
