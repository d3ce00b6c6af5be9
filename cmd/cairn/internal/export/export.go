// Package export writes a pchannel's or vchannel's history, or a
// snapshot's, as one Parquet file for data tools (DuckDB, polars, Spark),
// reading the store directly: segments below the flush checkpoint, the
// WAL above it, through the readers every Cairn reader uses. It is a
// package of its own because Parquet (arrow/go/v15's pqarrow) is linked
// into the cairn CLI only, never into the Lambda functions.
//
// The file has the columns of segment format 2 (snapshot.ExportSchema,
// docs/segments.md), vchannel and type as plain strings, in row groups of
// RowGroupRows messages, zstd-compressed.
//
// Concurrency: a Writer is not safe for concurrent use.
//
// Example:
//
//	w, err := export.NewWriter(file, "pchannel p0")
//	n, err := export.Range(ctx, store, layout, export.RangeOptions{PChannel: "p0"}, w.Add)
//	err = w.Close()
package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// RowGroupRows is how many messages one Parquet row group holds.
const RowGroupRows = 64 << 10

// ErrNoSnapshot: the snapshot named does not exist or is not committed.
var ErrNoSnapshot = errors.New("export: no committed snapshot of that name")

// Writer writes deliveries as one Parquet file.
type Writer struct {
	fw     *pqarrow.FileWriter
	schema *arrow.Schema
	mem    memory.Allocator
	rows   []segmentlog.Delivery
}

// NewWriter starts a Parquet file on w; source says what it holds (schema
// metadata "cairn.export.source").
func NewWriter(w io.Writer, source string) (*Writer, error) {
	schema := snapshot.ExportSchema(source)
	mem := memory.NewGoAllocator()
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithAllocator(mem),
		parquet.WithMaxRowGroupLength(RowGroupRows))
	fw, err := pqarrow.NewFileWriter(schema, w, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(mem)))
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return &Writer{fw: fw, schema: schema, mem: mem}, nil
}

// Add appends one message; a full row group is written out.
func (w *Writer) Add(d segmentlog.Delivery) error {
	w.rows = append(w.rows, d)
	if len(w.rows) >= RowGroupRows {
		return w.flush()
	}
	return nil
}

func (w *Writer) flush() error {
	if len(w.rows) == 0 {
		return nil
	}
	rec := snapshot.ExportRecord(w.mem, w.schema, w.rows)
	defer rec.Release()
	w.rows = w.rows[:0]
	if err := w.fw.Write(rec); err != nil {
		return fmt.Errorf("export: write row group: %w", err)
	}
	return nil
}

// Close writes what is left and the file's footer.
func (w *Writer) Close() error {
	if err := w.flush(); err != nil {
		w.fw.Close()
		return err
	}
	if err := w.fw.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// allTypes is every message type: an export leaves none out.
func allTypes() []segmentlog.MessageType {
	var ts []segmentlog.MessageType
	for t := range 256 {
		mt := segmentlog.MessageType(t)
		if _, err := segmentlog.ParseMessageType(mt.String()); err == nil {
			ts = append(ts, mt)
		}
	}
	return ts
}

// RangeOptions choose the messages Range reads.
type RangeOptions struct {
	PChannel string              // required
	VChannel string              // only this vchannel's messages; "" for all
	From     segmentlog.Position // default Earliest
	// To, if set, ends the range before this ID (exclusive); else it ends
	// at the pchannel's tail as of the read.
	To *segmentlog.MessageID
}

// Range calls fn for every message of every type in the range, in ID
// order, and returns how many it read.
func Range(ctx context.Context, store objstore.Store, layout segmentlog.Layout, o RangeOptions, fn func(segmentlog.Delivery) error) (int64, error) {
	cfg := segmentlog.ScannerConfig{PChannel: o.PChannel, Layout: layout, From: o.From, Types: allTypes(),
		NoWait: true, Segments: snapshot.NewSegmentReader(store, 0)}
	if o.VChannel != "" {
		cfg.VChannels = []string{o.VChannel}
	}
	sc, err := segmentlog.NewScanner(ctx, cfg, store)
	if err != nil {
		return 0, fmt.Errorf("export %s: %w", o.PChannel, err)
	}
	defer sc.Close()
	var n int64
	for {
		d, err := sc.Next(ctx)
		if errors.Is(err, segmentlog.ErrTail) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("export %s: %w", o.PChannel, err)
		}
		if o.To != nil && !d.ID.Less(*o.To) {
			return n, nil
		}
		if err := fn(d); err != nil {
			return n, err
		}
		n++
	}
}

// Snapshot calls fn for every message of the committed snapshot name, one
// vchannel after another (sorted), each in ID order, and returns the
// snapshot's record and how many messages it read.
func Snapshot(ctx context.Context, store objstore.Store, layout segmentlog.Layout, name string, fn func(segmentlog.Delivery) error) (snapshot.Snapshot, int64, error) {
	obj, err := store.Get(ctx, snapshot.SnapshotKey(layout, name))
	if errors.Is(err, objstore.ErrNotFound) {
		return snapshot.Snapshot{}, 0, fmt.Errorf("export snapshot %s: %w", name, ErrNoSnapshot)
	}
	if err != nil {
		return snapshot.Snapshot{}, 0, fmt.Errorf("export snapshot %s: %w", name, err)
	}
	var snap snapshot.Snapshot
	if err := json.Unmarshal(obj.Body, &snap); err != nil {
		return snapshot.Snapshot{}, 0, fmt.Errorf("export snapshot %s: record: %w", name, err)
	}
	if snap.State != snapshot.Committed {
		return snap, 0, fmt.Errorf("export snapshot %s (%s): %w", name, snap.State, ErrNoSnapshot)
	}
	reader := snapshot.NewSegmentReader(store, 0)
	// The manifest's files, all below their cuts: no limit but theirs.
	cp := segmentlog.Checkpoint{C: ^uint64(0), Segments: snap.Segments}
	var n int64
	for _, v := range slices.Sorted(slices.Values(snap.VChannels)) {
		it, err := reader.Open(ctx, cp, segmentlog.MessageID{}, []string{v})
		if err != nil {
			return snap, n, fmt.Errorf("export snapshot %s: %w", name, err)
		}
		for {
			d, err := it.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err == nil {
				err = fn(d)
			}
			if err != nil {
				it.Close()
				return snap, n, fmt.Errorf("export snapshot %s: %w", name, err)
			}
			n++
		}
		it.Close()
	}
	return snap, n, nil
}
