package snapshot

import (
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/cairnlog/cairn/segmentlog"
)

// MetaExportSource is the schema metadata key of an export naming what it
// holds ("pchannel p0", "vchannel orders", "snapshot nightly").
const MetaExportSource = "cairn.export.source"

// ExportSchema is the schema `cairn export` writes (to Parquet): the
// columns of segment format 2 in the same order, with vchannel and type
// plain strings (Parquet dictionary-encodes them itself, and every reader
// reads them as text). docs/segments.md describes the columns.
func ExportSchema(source string) *arrow.Schema {
	fields := make([]arrow.Field, len(segmentFields))
	copy(fields, segmentFields)
	fields[colVChannel].Type = arrow.BinaryTypes.String
	fields[colType].Type = arrow.BinaryTypes.String
	md := arrow.NewMetadata([]string{MetaFormat, MetaExportSource}, []string{"2", source})
	return arrow.NewSchema(fields, &md)
}

// ExportRecord builds one record batch of schema (ExportSchema's) holding
// rows. The caller releases it.
func ExportRecord(mem memory.Allocator, schema *arrow.Schema, rows []segmentlog.Delivery) arrow.Record {
	return buildRecord(mem, schema, rows, nil)
}
