package coordinator

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// The fuzz targets below feed every record decoder of this package arbitrary
// bytes, as a damaged or hostile bucket would. The property is the same for
// each: the decoder never panics, it fails only with an error that wraps
// ErrCorrupt, and a record it accepts re-encodes to bytes that decode to
// the same record (encode∘decode is a fixed point after one step).
//
//	go test ./coordinator -run '^$' -fuzz FuzzDecodeLease -fuzztime 1m

func FuzzDecodeLease(f *testing.F) {
	addGolden(f, "p-7", "lease_v1.json")
	addEncoded(f, "p-1", encodeLease, Lease{PChannel: "p-1", Term: 1, Nonce: "n", Holder: "h", Expires: fuzzTime})
	f.Add("p-1", []byte(`{"format":1,"pchannel":"p-1","expires":"9999-12-31T23:59:59-01:00"}`))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		checkRecordCodec(t, name, data, decodeLease, encodeLease)
	})
}

func FuzzDecodeBroadcast(f *testing.F) {
	b := Broadcast{
		ID: "bc-1", Payload: []byte("hello"), Properties: map[string]string{"k": "v"}, Ack: AckSync,
		Resources: []string{"vchannel.v1", "vchannel.v2"},
		Targets: []BroadcastTarget{
			{VChannel: "v1", PChannel: "p-1", FirstAttempt: fuzzTime, Synced: true,
				Appended: &WALMark{ID: segmentlog.MessageID{Offset: 7, Index: 1}, TimeTick: 99}},
			{VChannel: "v2", PChannel: "p-2", Skipped: "dropped"},
		},
		State: BroadcastPending, CreatedAt: fuzzTime, Version: 3,
	}
	addEncoded(f, "bc-1", encodeBroadcast, b)
	b.State, b.Ack, b.FinishedAt, b.Error = BroadcastFailed, AckFast, fuzzTime.Add(time.Second), "deadline passed"
	addEncoded(f, "bc-1", encodeBroadcast, b)
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		checkRecordCodec(t, name, data, decodeBroadcast, encodeBroadcast)
	})
}

func FuzzDecodeVChannel(f *testing.F) {
	addGolden(f, "orders-3", "vchannel_v1.json")
	addEncoded(f, "orders-3", encodeVChannel, goldenVChannel())
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		checkRecordCodec(t, name, data, decodeVChannel, encodeVChannel)
	})
}

func FuzzDecodeSession(f *testing.F) {
	addGolden(f, "node-b", "node_v1.json")
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		checkRecordCodec(t, name, data, decodeSession, encodeSession)
	})
}

func FuzzDecodeAssignment(f *testing.F) {
	addGolden(f, "p-2", "assignment_v1.json")
	addEncoded(f, "p-3", encodeAssignment, newAssignment("p-3", fuzzTime))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		checkRecordCodec(t, name, data, decodeAssignment, encodeAssignment)
	})
}

func FuzzDecodeLock(f *testing.F) {
	c := lockCodec(segmentlog.Layout{})
	addEncoded(f, "vchannel.v1", c.encode, Lock{Resource: "vchannel.v1", Holder: "bc-1", Nonce: "n", Expires: fuzzTime, Version: 2})
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		checkRecordCodec(t, name, data, c.decode, c.encode)
	})
}

var fuzzTime = time.Date(2026, 3, 1, 12, 0, 0, 250e6, time.UTC)

func addGolden(f *testing.F, name, file string) {
	f.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(name, bytes.TrimSpace(data))
}

func addEncoded[T any](f *testing.F, name string, encode func(T) ([]byte, error), v T) {
	f.Helper()
	data, err := encode(v)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(name, data)
}

// checkRecordCodec is the property every record decoder must have.
func checkRecordCodec[T any](t *testing.T, name string, data []byte,
	decode func(string, []byte) (T, error), encode func(T) ([]byte, error)) {
	t.Helper()
	v, err := decode(name, data)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode error does not wrap ErrCorrupt: %v", err)
		}
		return
	}
	once, err := encode(v)
	if err != nil {
		t.Fatalf("accepted record does not re-encode: %v\nrecord: %+v", err, v)
	}
	back, err := decode(name, once)
	if err != nil {
		t.Fatalf("re-encoded record does not decode: %v\n%s", err, once)
	}
	twice, err := encode(back)
	if err != nil {
		t.Fatalf("record does not re-encode a second time: %v", err)
	}
	if !bytes.Equal(once, twice) {
		t.Fatalf("round trip changed the record:\n once %s\ntwice %s", once, twice)
	}
}
