package objstore

import (
	"errors"
	"maps"
	"testing"
)

// FuzzDecodeSidecar feeds the filesystem store's sidecar decoder arbitrary
// bytes. It never panics; what it rejects fails with ErrCorrupt; and a
// sidecar it accepts re-encodes to bytes that decode to the same header.
//
//	go test ./infra/objstore -run '^$' -fuzz FuzzDecodeSidecar -fuzztime 1m
func FuzzDecodeSidecar(f *testing.F) {
	for _, obj := range []struct {
		etag string
		body []byte
		meta map[string]string
	}{
		{"e1", []byte("hello"), nil},
		{"\"0195f1c2\"", nil, map[string]string{"crc32c": "123", "x": ""}},
		{"", make([]byte, 64), map[string]string{}},
	} {
		side, err := encodeSidecar(obj.etag, obj.body, obj.meta)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(side)
	}
	f.Add([]byte(fsMetaMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := decodeSidecar(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if h.Size < 0 {
			t.Fatalf("accepted a negative size %d", h.Size)
		}
		side, err := encodeHeader(fsMetaMagic, fsMetaVersion, h)
		if err != nil {
			t.Fatalf("accepted header does not re-encode: %v", err)
		}
		back, err := decodeSidecar(side)
		if err != nil {
			t.Fatalf("re-encoded sidecar does not decode: %v", err)
		}
		if back.ETag != h.ETag || back.Size != h.Size || back.CRC32C != h.CRC32C || !maps.Equal(back.Meta, h.Meta) {
			t.Fatalf("round trip changed the header:\n got %+v\nwant %+v", back, h)
		}
	})
}
