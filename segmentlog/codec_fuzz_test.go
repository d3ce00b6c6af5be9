package segmentlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecodeBatch checks that DecodeBatch and DecodeHeader never panic, that
// every failure wraps ErrCorrupt, that whatever decodes re-encodes to the
// very same bytes (the encoding is canonical), and that DecodeBatchAliasing
// decodes what DecodeBatch does.
//
// Mutated inputs almost never carry a valid CRC, so each input is also tried
// "resealed": with body_len and the CRC recomputed, which lets the fuzzer
// reach the message decoder behind them.
//
//	go test ./segmentlog -run '^$' -fuzz FuzzDecodeBatch -fuzztime 3m
//
// Adding -fuzzminimizetime 5s leaves the workers more time to explore: by
// default each new interesting input is minimized for up to a minute.
func FuzzDecodeBatch(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", goldenPrefix+"*.bin"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	// Small seeds only: the mutator finds more in small inputs.
	for _, b := range []Batch{
		sampleBatch(),
		{Kind: KindFence, Term: 1, Nonce: testNonce},
		{Kind: KindData, Messages: []Message{{Type: TypeTimeTick, TimeTick: 1}}},
		{Kind: KindData, Messages: []Message{
			{Type: TypeData, VChannel: "v", TimeTick: 1, Properties: map[string]string{"a": "", "b": "c"}},
			{Type: TypeTxnCommit, VChannel: "v", TimeTick: 2, TxnID: 1, Key: IdemKey{Producer: "p"}, BroadcastID: "b"},
		}},
	} {
		data, err := b.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("CWAL\x02"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
		if len(data) >= HeaderSize+TrailerSize && len(data) <= MaxBatchBytes {
			checkDecode(t, reseal(bytes.Clone(data)))
		}
	})
}

func checkDecode(t *testing.T, data []byte) {
	h, herr := DecodeHeader(data)
	if herr != nil && !errors.Is(herr, ErrCorrupt) {
		t.Fatalf("DecodeHeader error does not wrap ErrCorrupt: %v", herr)
	}
	b, err := DecodeBatch(data)
	if ab, aerr := DecodeBatchAliasing(data); (aerr == nil) != (err == nil) || !reflect.DeepEqual(ab, b) {
		t.Fatalf("DecodeBatchAliasing = %+v, %v; DecodeBatch = %+v, %v", ab, aerr, b, err)
	}
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("DecodeBatch error does not wrap ErrCorrupt: %v", err)
		}
		return
	}
	if herr != nil {
		t.Fatalf("DecodeBatch succeeded but DecodeHeader failed: %v", herr)
	}
	want := Header{Version: FormatVersion, Kind: b.Kind, Term: b.Term, Offset: b.Offset, Nonce: b.Nonce,
		FirstTimeTick: b.FirstTimeTick(), LastTimeTick: b.LastTimeTick(), Count: uint32(len(b.Messages))}
	if h != want {
		t.Fatalf("DecodeHeader = %+v, batch says %+v", h, want)
	}
	again, err := b.Encode()
	if err != nil {
		t.Fatalf("decoded batch does not encode: %v", err)
	}
	if !bytes.Equal(again, data) {
		t.Fatalf("re-encoding differs:\n in %x\nout %x", data, again)
	}
}
