package objstore

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadHeader feeds the filesystem store's object file decoder arbitrary
// files. It never panics; a file it rejects fails with ErrCorrupt; a header
// it accepts fits the file; and an object it accepts whole (header and body
// checksum) re-encodes to a file that reads back as the same object.
//
//	go test ./infra/objstore -run '^$' -fuzz FuzzReadHeader -fuzztime 1m
func FuzzReadHeader(f *testing.F) {
	for _, obj := range []struct {
		etag string
		body []byte
		meta map[string]string
	}{
		{"e1", []byte("hello"), nil},
		{"\"0195f1c2\"", nil, map[string]string{"crc32c": "123", "x": ""}},
		{"", make([]byte, 64), map[string]string{}},
	} {
		head, err := encodeHeader(obj.etag, obj.body, obj.meta)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(head, obj.body...))
	}
	f.Add([]byte(fsMagic))
	path := filepath.Join(f.TempDir(), "obj")
	f.Fuzz(func(t *testing.T, data []byte) {
		h, body, err := readFile(t, path, data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if h.bodyOff+h.Size != int64(len(data)) || h.Size != int64(len(body)) {
			t.Fatalf("header says body of %d at %d, file is %d bytes", h.Size, h.bodyOff, len(data))
		}
		if err := h.verify(body); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("verify error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		head, err := encodeHeader(h.ETag, body, h.Meta)
		if err != nil {
			t.Fatalf("accepted header does not re-encode: %v", err)
		}
		back, _, err := readFile(t, path, append(head, body...))
		if err != nil {
			t.Fatalf("re-encoded object does not read: %v", err)
		}
		if back.ETag != h.ETag || back.Size != h.Size || back.CRC32C != h.CRC32C || !maps.Equal(back.Meta, h.Meta) {
			t.Fatalf("round trip changed the header:\n got %+v\nwant %+v", back, h)
		}
	})
}

// readFile writes data as the object file at path and decodes it.
func readFile(t *testing.T, path string, data []byte) (fsHeader, []byte, error) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	h, err := readHeader(file)
	if err != nil {
		return h, nil, err
	}
	return h, data[h.bodyOff:], nil
}
