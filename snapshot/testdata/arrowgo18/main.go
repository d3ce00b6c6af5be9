// Command arrowgo18 reads Cairn segment files with arrow-go's current line
// (v18), a module of its own so that Cairn's v15 writer is checked against
// the maintained reader, and prints [{vchannel, type, count, bytes}] over
// all of them as JSON: the snapshot package's interop test compares it with
// Cairn's own reader. It fails on a file whose schema is not segment
// format 2's.
//
//	go run . FILE...
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

type group struct {
	VChannel string `json:"vchannel"`
	Type     string `json:"type"`
	Count    int64  `json:"count"`
	Bytes    int64  `json:"bytes"`
}

func main() {
	groups := map[[2]string]*group{}
	var order [][2]string
	for _, name := range os.Args[1:] {
		if err := summarize(name, groups, &order); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			os.Exit(1)
		}
	}
	out := make([]group, 0, len(order))
	for _, k := range order {
		out = append(out, *groups[k])
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func summarize(name string, groups map[[2]string]*group, order *[][2]string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	mem := memory.NewGoAllocator()
	r, err := ipc.NewFileReader(f, ipc.WithAllocator(mem))
	if err != nil {
		return err
	}
	defer r.Close()
	s := r.Schema()
	if v, _ := s.Metadata().GetValue("cairn.segment.format"); v != "2" {
		return fmt.Errorf("segment format %q, want 2", v)
	}
	want := map[string]arrow.DataType{
		"vchannel":  &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String},
		"type":      &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String},
		"timestamp": &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"},
		"offset":    arrow.PrimitiveTypes.Uint64,
		"payload":   arrow.BinaryTypes.Binary,
	}
	for field, typ := range want {
		idx := s.FieldIndices(field)
		if len(idx) != 1 || !arrow.TypeEqual(s.Field(idx[0]).Type, typ) {
			return fmt.Errorf("column %s: %v, want %s", field, idx, typ)
		}
	}
	col := func(n string) int { return s.FieldIndices(n)[0] }
	for i := 0; i < r.NumRecords(); i++ {
		rec, err := r.RecordAt(i)
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		vch := rec.Column(col("vchannel")).(*array.Dictionary)
		vdict := vch.Dictionary().(*array.String)
		typ := rec.Column(col("type")).(*array.Dictionary)
		tdict := typ.Dictionary().(*array.String)
		pay := rec.Column(col("payload")).(*array.Binary)
		for j := 0; j < int(rec.NumRows()); j++ {
			k := [2]string{vdict.Value(vch.GetValueIndex(j)), tdict.Value(typ.GetValueIndex(j))}
			g := groups[k]
			if g == nil {
				g = &group{VChannel: k[0], Type: k[1]}
				groups[k] = g
				*order = append(*order, k)
			}
			g.Count++
			g.Bytes += int64(len(pay.Value(j)))
		}
		rec.Release()
	}
	return nil
}
