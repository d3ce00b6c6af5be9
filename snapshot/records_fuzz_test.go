package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// FuzzDecodeRecords feeds this package's record decoder (snapshot, restore
// job, the checkpoint as GC and the flusher read it, and retired list)
// arbitrary bytes.
// It never panics, fails only with ErrCorrupt, and a record it accepts
// re-encodes, as update writes it, to bytes that decode to the same record.
// The first byte picks the record kind.
//
//	go test ./snapshot -run '^$' -fuzz FuzzDecodeRecords -fuzztime 1m
func FuzzDecodeRecords(f *testing.F) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 5e6, time.UTC)
	ref := segmentlog.SegmentRef{VChannel: "v", Key: "seg/p-1/v/0-41.arrow", LastOffset: 41, Messages: 80, Bytes: 4096}
	for kind, rec := range []any{
		Snapshot{Format: snapshotFormat, Name: "nightly", State: Committed, VChannels: []string{"a", "v"},
			Cuts: []Cut{{PChannel: "p-1", C: 42, TimeTick: 99}}, TimeTick: 99, Segments: []segmentlog.SegmentRef{ref},
			Messages: 80, Bytes: 4096, CreatedAt: at, UpdatedAt: at.Add(time.Second), Version: 3},
		RestoreJob{Format: restoreFormat, ID: "job-1", Snapshot: "nightly", Targets: map[string]string{"v": "v2"},
			State: JobRunning, Done: 1, Total: 2, TimeTick: 99, Segments: []segmentlog.SegmentRef{ref}, Version: 2},
		segmentlog.Checkpoint{Format: segmentlog.CheckpointFormat, PChannel: "p-1", C: 42, Segments: []segmentlog.SegmentRef{ref},
			Retired: []segmentlog.RetiredSegment{{Key: "seg/p-1/v/0-9.arrow", RetiredAt: at}}, Version: 5, UpdatedAt: at},
		RetiredList{Format: retiredListFormat, PChannel: "p-1", RetiredAt: at, Keys: []string{"seg/p-1/v/0-9.arrow", "seg/p-1/v/10-19.arrow"}},
	} {
		data, err := json.Marshal(rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(kind), data)
	}
	f.Add(byte(0), []byte(`{"format":2}`))
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		switch kind % 4 {
		case 0:
			checkRecordRoundTrip[Snapshot](t, data)
		case 1:
			checkRecordRoundTrip[RestoreJob](t, data)
		case 3:
			checkRecordRoundTrip[RetiredList](t, data)
		default:
			checkRecordRoundTrip[segmentlog.Checkpoint](t, data)
		}
	})
}

func checkRecordRoundTrip[T record](t *testing.T, data []byte) {
	t.Helper()
	v, err := decodeRecord[T](data)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode error does not wrap ErrCorrupt: %v", err)
		}
		return
	}
	once, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("accepted record does not re-encode: %v", err)
	}
	back, err := decodeRecord[T](once)
	if err != nil {
		t.Fatalf("re-encoded record does not decode: %v\n%s", err, once)
	}
	twice, err := json.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(once, twice) {
		t.Fatalf("round trip changed the record:\n once %s\ntwice %s", once, twice)
	}
}
