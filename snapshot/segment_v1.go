package snapshot

import (
	"bytes"
	"fmt"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/cairnlog/cairn/segmentlog"
)

// Segment format 1, read only: Cairn wrote it before format 2, and files of
// it stay in buckets (in snapshots, for ever). It has no vchannel column
// (the schema metadata "cairn.vchannel" names the file's one vchannel), no
// timestamp, and the type as its code alone:
//
//	offset uint64, index uint32, term uint64, timetick uint64, type uint8,
//	txn uint64, key struct<producer, epoch, seq>, properties map<utf8, utf8>,
//	payload binary, broadcast_id utf8
//
// testdata/segment-v1.arrow is a file of it, written by its encoder.
const (
	v1Offset = iota
	v1Index
	v1Term
	v1TimeTick
	v1Type
	v1Txn
	v1Key
	v1Properties
	v1Payload
	v1Broadcast
	v1NumCols
)

var segmentV1Fields = []arrow.Field{
	v1Offset:     {Name: "offset", Type: arrow.PrimitiveTypes.Uint64},
	v1Index:      {Name: "index", Type: arrow.PrimitiveTypes.Uint32},
	v1Term:       {Name: "term", Type: arrow.PrimitiveTypes.Uint64},
	v1TimeTick:   {Name: "timetick", Type: arrow.PrimitiveTypes.Uint64},
	v1Type:       {Name: "type", Type: arrow.PrimitiveTypes.Uint8},
	v1Txn:        {Name: "txn", Type: arrow.PrimitiveTypes.Uint64},
	v1Key:        {Name: "key", Type: keyType, Nullable: true},
	v1Properties: {Name: "properties", Type: propertiesType, Nullable: true},
	v1Payload:    {Name: "payload", Type: arrow.BinaryTypes.Binary},
	v1Broadcast:  {Name: "broadcast_id", Type: arrow.BinaryTypes.String, Nullable: true},
}

// appendDecodedV1 appends the rows of one format 1 record batch.
func appendDecodedV1(rows []segmentlog.Delivery, rec arrow.Record, vchannel string) ([]segmentlog.Delivery, error) {
	offA := rec.Column(v1Offset).(*array.Uint64)
	idxA := rec.Column(v1Index).(*array.Uint32)
	termA := rec.Column(v1Term).(*array.Uint64)
	tickA := rec.Column(v1TimeTick).(*array.Uint64)
	typeA := rec.Column(v1Type).(*array.Uint8)
	txnA := rec.Column(v1Txn).(*array.Uint64)
	rest := restColumns{
		key:        rec.Column(v1Key).(*array.Struct),
		properties: rec.Column(v1Properties).(*array.Map),
		payload:    rec.Column(v1Payload).(*array.Binary),
		broadcast:  rec.Column(v1Broadcast).(*array.String),
	}
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
		if err := rest.decode(i, m); err != nil {
			return nil, err
		}
		var err error
		if rows, err = appendInOrder(rows, d); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// restColumns are the columns formats 1 and 2 share.
type restColumns struct {
	key        *array.Struct
	properties *array.Map
	payload    *array.Binary
	broadcast  *array.String
}

// decode fills m's key, properties, payload and broadcast ID from row i.
func (c restColumns) decode(i int, m *segmentlog.Message) error {
	if c.key.IsValid(i) {
		prodA := c.key.Field(0).(*array.String)
		epochA := c.key.Field(1).(*array.Uint64)
		seqA := c.key.Field(2).(*array.Uint64)
		m.Key = segmentlog.IdemKey{Producer: prodA.Value(i), Epoch: epochA.Value(i), Seq: seqA.Value(i)}
		switch {
		case !m.Key.IsZero():
		case m.Key.Epoch != 0 || m.Key.Seq != 0:
			// Found by FuzzDecodeSegment: a key is its producer's; the
			// encoder writes none (null) for an unkeyed message.
			return fmt.Errorf("%w: row %d: idempotency key %+v has no producer", ErrCorrupt, i, m.Key)
		default:
			m.Key = segmentlog.IdemKey{} // present but empty decodes as none, as the encoder writes it
		}
	}
	if c.properties.IsValid(i) {
		pkA := c.properties.Keys().(*array.String)
		pvA := c.properties.Items().(*array.String)
		start, end := c.properties.ValueOffsets(i)
		if start < 0 || end > int64(pkA.Len()) || end > int64(pvA.Len()) || start > end {
			return fmt.Errorf("%w: properties of row %d out of range", ErrCorrupt, i)
		}
		if end > start { // an empty map decodes as none, as the encoder writes it
			m.Properties = make(map[string]string, end-start)
		}
		for j := start; j < end; j++ {
			m.Properties[pkA.Value(int(j))] = pvA.Value(int(j))
		}
	}
	if p := c.payload.Value(i); len(p) > 0 {
		m.Payload = bytes.Clone(p) // the record's buffers are released
	}
	if c.broadcast.IsValid(i) {
		m.BroadcastID = c.broadcast.Value(i)
	}
	return nil
}

// appendInOrder appends d to rows if it comes after the last one.
func appendInOrder(rows []segmentlog.Delivery, d segmentlog.Delivery) ([]segmentlog.Delivery, error) {
	if n := len(rows); n > 0 && !rows[n-1].ID.Less(d.ID) {
		return nil, fmt.Errorf("%w: row %v after %v: not in ID order", ErrCorrupt, d.ID, rows[n-1].ID)
	}
	return append(rows, d), nil
}
