package snapshot

import (
	"encoding/binary"
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"
)

// Slots (vtable offsets) of the Arrow File.fbs and Schema.fbs tables that
// checkFooter reads.
const (
	slotFooterSchema   = 6  // Footer.schema
	slotSchemaFields   = 6  // Schema.fields
	slotSchemaMeta     = 8  // Schema.custom_metadata
	slotFieldChildren  = 14 // Field.children
	slotFieldMeta      = 16 // Field.custom_metadata
	slotKeyValueKey    = 4  // KeyValue.key
	slotKeyValueValue  = 6  // KeyValue.value
	maxSchemaDepth     = 64 // nesting of fields; a segment's is 3
	arrowFileTrailerSz = 4 + 6
)

// checkFooter walks the schema in an Arrow file's footer as arrow-go's
// reader will, before it does. The reader makes a slice of every vector
// length it meets there (fields, children, custom metadata) before reading
// the elements, and recurses into children without a bound: a forged length
// of 4 billion fields (found by FuzzDecodeSegment) is a fatal out-of-memory
// error, and children that point back at their parent a stack overflow;
// neither can be recovered. checkFooter accepts the footer only if what
// the reader will allocate for it, counted over the whole walk, fits in
// four times the footer's size. Every footer the encoder writes needs at
// most one time: each element and string counted takes its own bytes there
// (the rest is slack for writers that share strings). What it cannot
// parse it leaves to the reader, which reports it; an out-of-range read
// panics, which decodeSegment recovers.
func checkFooter(data []byte) error {
	if len(data) < arrowFileTrailerSz {
		return nil
	}
	n := int64(binary.LittleEndian.Uint32(data[len(data)-arrowFileTrailerSz:]))
	if n <= 0 || n > int64(len(data)-arrowFileTrailerSz) {
		return nil
	}
	buf := data[len(data)-arrowFileTrailerSz-int(n) : len(data)-arrowFileTrailerSz]
	footer := flatbuffers.Table{Bytes: buf, Pos: flatbuffers.GetUOffsetT(buf)}
	o := flatbuffers.UOffsetT(footer.Offset(slotFooterSchema))
	if o == 0 {
		return nil
	}
	schema := flatbuffers.Table{Bytes: buf, Pos: footer.Indirect(o + footer.Pos)}
	w := footerWalk{buf: buf, left: 4 * int64(len(buf))}
	if err := w.metadata(schema, slotSchemaMeta); err != nil {
		return err
	}
	return w.fields(schema, slotSchemaFields, 0)
}

// footerWalk counts what the reader will allocate against left.
type footerWalk struct {
	buf  []byte
	left int64
}

// vector returns the start and length of the vector of 4-byte offsets in
// slot of t, charging its length.
func (w *footerWalk) vector(t flatbuffers.Table, slot flatbuffers.VOffsetT) (flatbuffers.UOffsetT, int, error) {
	o := flatbuffers.UOffsetT(t.Offset(slot))
	if o == 0 {
		return 0, 0, nil
	}
	n, start := t.VectorLen(o), t.Vector(o)
	if int64(start)+4*int64(n) > int64(len(w.buf)) {
		return 0, 0, fmt.Errorf("%w: arrow footer: vector of %d elements overruns its %d bytes", ErrCorrupt, n, len(w.buf))
	}
	if err := w.charge(4 * int64(n)); err != nil {
		return 0, 0, err
	}
	return start, n, nil
}

func (w *footerWalk) charge(n int64) error {
	w.left -= n
	if w.left < 0 {
		return fmt.Errorf("%w: arrow footer: schema larger than its %d bytes can hold", ErrCorrupt, len(w.buf))
	}
	return nil
}

func (w *footerWalk) element(start flatbuffers.UOffsetT, j int) flatbuffers.Table {
	t := flatbuffers.Table{Bytes: w.buf}
	t.Pos = t.Indirect(start + flatbuffers.UOffsetT(j)*4)
	return t
}

func (w *footerWalk) fields(t flatbuffers.Table, slot flatbuffers.VOffsetT, depth int) error {
	if depth > maxSchemaDepth {
		return fmt.Errorf("%w: arrow footer: fields nested deeper than %d", ErrCorrupt, maxSchemaDepth)
	}
	start, n, err := w.vector(t, slot)
	if err != nil {
		return err
	}
	for j := range n {
		f := w.element(start, j)
		if err := w.metadata(f, slotFieldMeta); err != nil {
			return err
		}
		if err := w.fields(f, slotFieldChildren, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (w *footerWalk) metadata(t flatbuffers.Table, slot flatbuffers.VOffsetT) error {
	start, n, err := w.vector(t, slot)
	if err != nil {
		return err
	}
	for j := range n {
		kv := w.element(start, j)
		for _, s := range []flatbuffers.VOffsetT{slotKeyValueKey, slotKeyValueValue} {
			if o := flatbuffers.UOffsetT(kv.Offset(s)); o != 0 {
				if err := w.charge(int64(len(kv.ByteVector(o + kv.Pos)))); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
