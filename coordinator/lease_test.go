package coordinator

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// goldenLease is a record with every field set, in the stored format.
func goldenLease() Lease {
	return Lease{
		PChannel:   "p-7",
		Term:       12,
		Nonce:      "0195f1c2-7a3b-7c4d-8e5f-0123456789ab",
		Holder:     "node-a",
		Expires:    time.Date(2026, 3, 1, 12, 0, 10, 250_000_000, time.UTC),
		Released:   true,
		Tail:       4096,
		TTMax:      segmentlog.TickOf(time.Date(2026, 3, 1, 12, 0, 10, 250_000_000, time.UTC)),
		LastTick:   segmentlog.TickOf(time.Date(2026, 3, 1, 12, 0, 5, 0, time.UTC)) + 3,
		TickFloor:  segmentlog.TickOf(time.Date(2026, 3, 1, 11, 59, 58, 0, time.UTC)),
		Version:    31,
		AcquiredAt: time.Date(2026, 3, 1, 12, 0, 0, 250_000_000, time.UTC),
	}
}

// TestLeaseRecordGolden pins the stored format: a format-1 record must keep
// decoding to the same Lease forever.
func TestLeaseRecordGolden(t *testing.T) {
	path := filepath.Join("testdata", "lease_v1.json")
	b, err := encodeLease(goldenLease())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(append(b, '\n'), want) {
		t.Fatalf("encoding changed:\n got %s\nwant %s", b, want)
	}
	got, err := decodeLease("p-7", want)
	if err != nil {
		t.Fatal(err)
	}
	if got != goldenLease() {
		t.Fatalf("decoded %+v\nwant    %+v", got, goldenLease())
	}
}

func TestLeaseRecordRoundTrip(t *testing.T) {
	// A clock reading with a monotonic part and a zone decodes equal to
	// itself in UTC.
	l := goldenLease()
	l.Expires = time.Now().In(time.FixedZone("x", 3600))
	b, err := encodeLease(l)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeLease("p-7", b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Expires.Equal(l.Expires) || got.Expires.Location() != time.UTC {
		t.Fatalf("expires %v, want %v in UTC", got.Expires, l.Expires)
	}
}

func TestLeaseRecordRejects(t *testing.T) {
	good, err := encodeLease(goldenLease())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, p, body, want string
	}{
		{"unknown format", "p-7", strings.Replace(string(good), `"format":1`, `"format":2`, 1), "unknown format 2"},
		{"no format", "p-7", strings.Replace(string(good), `"format":1,`, ``, 1), `no "format"`},
		{"other pchannel", "p-8", string(good), `names pchannel "p-7"`},
		{"not JSON", "p-7", `{"format":1,`, "lease record of p-7"},
		{"wrong type", "p-7", `{"format":1,"pchannel":"p-7","term":"x"}`, "lease record of p-7"},
		{"empty", "p-7", ``, "lease record of p-7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeLease(tc.p, []byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
