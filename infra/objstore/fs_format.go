package objstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"time"
)

// Object file format of the filesystem store, version 1. Integers are
// big-endian.
//
//	offset  size  field
//	0       8     magic "CAIRNOBJ"
//	8       2     format version (1)
//	10      4     header length H
//	14      4     CRC32C (Castagnoli) of the header bytes
//	18      H     header, JSON: {"etag":"…","size":N,"crc32c":C,"meta":{…}}
//	18+H    N     body, whose CRC32C is C
//
// Wire format: never change it in place; a new layout takes a new version,
// and readers keep reading the old ones.
const (
	fsMagic       = "CAIRNOBJ"
	fsVersion     = 1
	fsPreambleLen = 18
	fsMaxHeader   = 1 << 20
	// fsFirstRead is how much readHeader reads at once; it covers the
	// header of any object with ordinary metadata.
	fsFirstRead = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fsHeader is the decoded header of an object file.
type fsHeader struct {
	ETag   string            `json:"etag"`
	Size   int64             `json:"size"`
	CRC32C uint32            `json:"crc32c"`
	Meta   map[string]string `json:"meta,omitempty"`

	bodyOff int64     // where the body starts in the file
	mtime   time.Time // the file's modification time
}

// encodeHeader returns the preamble and header of an object file.
func encodeHeader(etag string, body []byte, meta map[string]string) ([]byte, error) {
	js, err := json.Marshal(fsHeader{ETag: etag, Size: int64(len(body)), CRC32C: crc32.Checksum(body, castagnoli), Meta: meta})
	if err != nil {
		return nil, fmt.Errorf("encode object header: %w", err)
	}
	if len(js) > fsMaxHeader {
		return nil, fmt.Errorf("object header of %d bytes exceeds %d (metadata too large)", len(js), fsMaxHeader)
	}
	b := make([]byte, fsPreambleLen, fsPreambleLen+len(js))
	copy(b, fsMagic)
	binary.BigEndian.PutUint16(b[8:], fsVersion)
	binary.BigEndian.PutUint32(b[10:], uint32(len(js)))
	binary.BigEndian.PutUint32(b[14:], crc32.Checksum(js, castagnoli))
	return append(b, js...), nil
}

// readHeader decodes the header of an open object file and checks it
// against the file's size. It never panics on a damaged file; a damaged
// file's error wraps ErrCorrupt (an I/O error does not).
func readHeader(file *os.File) (fsHeader, error) {
	corrupt := func(why string, args ...any) (fsHeader, error) {
		return fsHeader{}, fmt.Errorf("%w %s: %s", ErrCorrupt, file.Name(), fmt.Sprintf(why, args...))
	}
	st, err := file.Stat()
	if err != nil {
		return fsHeader{}, err
	}
	buf := make([]byte, min(st.Size(), fsFirstRead))
	if _, err := file.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return fsHeader{}, err
	}
	if len(buf) < fsPreambleLen || string(buf[:8]) != fsMagic {
		return corrupt("bad magic")
	}
	if v := binary.BigEndian.Uint16(buf[8:]); v != fsVersion {
		return corrupt("unknown format version %d", v)
	}
	hlen := int64(binary.BigEndian.Uint32(buf[10:]))
	if hlen > fsMaxHeader || fsPreambleLen+hlen > st.Size() {
		return corrupt("header length %d out of range", hlen)
	}
	js := make([]byte, hlen)
	n := copy(js, buf[fsPreambleLen:])
	if int64(n) < hlen {
		if _, err := file.ReadAt(js[n:], fsPreambleLen+int64(n)); err != nil {
			return fsHeader{}, err
		}
	}
	if crc32.Checksum(js, castagnoli) != binary.BigEndian.Uint32(buf[14:]) {
		return corrupt("header checksum mismatch")
	}
	var h fsHeader
	if err := json.Unmarshal(js, &h); err != nil {
		return corrupt("header: %v", err)
	}
	h.bodyOff = fsPreambleLen + hlen
	if h.Size < 0 || h.bodyOff+h.Size != st.Size() {
		return corrupt("body of %d bytes does not fit a file of %d", h.Size, st.Size())
	}
	h.mtime = st.ModTime()
	return h, nil
}

// verify checks a whole body against the header's CRC32C.
func (h fsHeader) verify(body []byte) error {
	if crc32.Checksum(body, castagnoli) != h.CRC32C {
		return fmt.Errorf("%w: body checksum mismatch", ErrCorrupt)
	}
	return nil
}

func (h fsHeader) attrs(key string) Attrs {
	return Attrs{Key: key, Size: h.Size, ETag: h.ETag, Meta: maps.Clone(h.Meta), LastModified: h.mtime}
}
