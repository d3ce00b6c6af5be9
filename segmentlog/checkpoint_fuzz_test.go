package segmentlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzDecodeCheckpoint checks that the checkpoint decoder never panics,
// that every failure wraps ErrCorrupt, and that a record it accepts
// re-encodes (as the flusher writes it, with json.Marshal) to bytes that
// decode to the same record.
//
//	go test ./segmentlog -run '^$' -fuzz FuzzDecodeCheckpoint -fuzztime 1m
func FuzzDecodeCheckpoint(f *testing.F) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 5e6, time.UTC)
	for _, cp := range []Checkpoint{
		{Format: CheckpointFormat, PChannel: "p-1"},
		{
			Format: CheckpointFormat, PChannel: "p-1", C: 42, MaxTerm: 3, LastTimeTick: 99,
			TermChanges: []TermChange{{Offset: 0, Term: 1}, {Offset: 17, Term: 3}},
			Dedup:       []DedupEntry{{Key: IdemKey{Producer: "prod", Epoch: 1, Seq: 7}, ID: MessageID{Offset: 40, Index: 2}, TimeTick: 98}},
			Segments: []SegmentRef{{VChannel: "v", Key: "seg/p-1/v/0-41.arrow", FirstOffset: 0, LastOffset: 41, Messages: 80, Bytes: 4096},
				{VChannel: "", Key: "seg/p-1/_/0-41.arrow", LastOffset: 41, Messages: 3, Bytes: 512}},
			Retired: []RetiredSegment{{Key: "seg/p-1/v/0-9.arrow", RetiredAt: at}},
			FlushID: "f-1", Version: 5, UpdatedAt: at.In(time.FixedZone("x", 3600)),
		},
	} {
		data, err := json.Marshal(cp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"format":2}`))
	f.Add([]byte(`{"format":1,"updated_at":"9999-12-31T23:59:59-01:00"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := decodeCheckpoint(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		once, err := json.Marshal(cp)
		if err != nil {
			t.Fatalf("accepted checkpoint does not re-encode: %v", err)
		}
		back, err := decodeCheckpoint(once)
		if err != nil {
			t.Fatalf("re-encoded checkpoint does not decode: %v\n%s", err, once)
		}
		twice, err := json.Marshal(back)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("round trip changed the checkpoint:\n once %s\ntwice %s", once, twice)
		}
	})
}
