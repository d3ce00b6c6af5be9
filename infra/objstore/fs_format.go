package objstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Data directory format of the filesystem store. Version 2 keeps each
// object's bytes as the whole content of its object file, so that any tool
// opens a stored Arrow segment in place, and its ETag, size, CRC32C and user
// metadata in a sidecar file beside it:
//
//	root/.cairn-format                         "2\n"
//	root/wal.d/p1.d/00000000000000000007.obj   the object's bytes, nothing else
//	root/wal.d/p1.d/00000000000000000007.obj.meta   its sidecar
//
// Version 1 (no .cairn-format file) kept a 120-odd-byte "CAIRNOBJ" header in
// front of every object; NewFS refuses such a directory and MigrateFS
// converts it in place.
//
// Sidecar file, version 1. Integers are big-endian.
//
//	offset  size  field
//	0       8     magic "CAIRNMET"
//	8       2     sidecar version (1)
//	10      4     header length H
//	14      4     CRC32C (Castagnoli) of the header bytes
//	18      H     header, JSON: {"etag":"…","size":N,"crc32c":C,"meta":{…}}
//
// N and C are the size and CRC32C of the object file the sidecar belongs to.
//
// Wire format: never change it in place; a new layout takes a new version,
// and readers keep reading the old ones.
const (
	fsFormat        = 2
	fsFormatFile    = ".cairn-format"
	fsSidecarSuffix = ".meta"
	// fsNextSuffix marks the sidecar of a write being published (see
	// FS.recoverLocked).
	fsNextSuffix   = ".next"
	fsMetaMagic    = "CAIRNMET"
	fsMetaVersion  = 1
	fsPreambleLen  = 18
	fsMaxHeader    = 1 << 20
	fsV1Magic      = "CAIRNOBJ"
	fsV1Version    = 1
	fsMaxSidecarSz = fsPreambleLen + fsMaxHeader
)

// ErrFormat: the filesystem store's data directory has a layout this
// version does not read (a version 1 directory to migrate, or a newer one).
var ErrFormat = errors.New("objstore: data directory format")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fsHeader is the decoded content of a sidecar.
type fsHeader struct {
	ETag   string            `json:"etag"`
	Size   int64             `json:"size"`
	CRC32C uint32            `json:"crc32c"`
	Meta   map[string]string `json:"meta,omitempty"`

	mtime time.Time // the object file's modification time
}

// encodeSidecar returns the sidecar of an object with body.
func encodeSidecar(etag string, body []byte, meta map[string]string) ([]byte, error) {
	return encodeHeader(fsMetaMagic, fsMetaVersion, fsHeader{ETag: etag, Size: int64(len(body)), CRC32C: crc32.Checksum(body, castagnoli), Meta: meta})
}

func encodeHeader(magic string, version uint16, h fsHeader) ([]byte, error) {
	js, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode object header: %w", err)
	}
	if len(js) > fsMaxHeader {
		return nil, fmt.Errorf("object header of %d bytes exceeds %d (metadata too large)", len(js), fsMaxHeader)
	}
	b := make([]byte, fsPreambleLen, fsPreambleLen+len(js))
	copy(b, magic)
	binary.BigEndian.PutUint16(b[8:], version)
	binary.BigEndian.PutUint32(b[10:], uint32(len(js)))
	binary.BigEndian.PutUint32(b[14:], crc32.Checksum(js, castagnoli))
	return append(b, js...), nil
}

// decodeSidecar decodes a whole sidecar file. It never panics; every error
// wraps ErrCorrupt.
func decodeSidecar(b []byte) (fsHeader, error) {
	h, n, err := decodeHeader(b, fsMetaMagic, fsMetaVersion)
	if err != nil {
		return fsHeader{}, err
	}
	if n != len(b) {
		return fsHeader{}, fmt.Errorf("%w: sidecar of %d bytes holds %d after its header", ErrCorrupt, len(b), len(b)-n)
	}
	return h, nil
}

// decodeHeader decodes the preamble and JSON header at the start of b and
// returns it with its length in bytes.
func decodeHeader(b []byte, magic string, version uint16) (fsHeader, int, error) {
	corrupt := func(why string, args ...any) (fsHeader, int, error) {
		return fsHeader{}, 0, fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(why, args...))
	}
	if len(b) < fsPreambleLen || string(b[:8]) != magic {
		return corrupt("bad magic")
	}
	if v := binary.BigEndian.Uint16(b[8:]); v != version {
		return corrupt("unknown version %d", v)
	}
	hlen := int64(binary.BigEndian.Uint32(b[10:]))
	if hlen > fsMaxHeader || fsPreambleLen+hlen > int64(len(b)) {
		return corrupt("header length %d out of range", hlen)
	}
	js := b[fsPreambleLen : fsPreambleLen+hlen]
	if crc32.Checksum(js, castagnoli) != binary.BigEndian.Uint32(b[14:]) {
		return corrupt("header checksum mismatch")
	}
	var h fsHeader
	if err := json.Unmarshal(js, &h); err != nil {
		return corrupt("header: %v", err)
	}
	if h.Size < 0 {
		return corrupt("negative size %d", h.Size)
	}
	return h, int(fsPreambleLen + hlen), nil
}

// verify checks a whole body against the header's size and CRC32C.
func (h fsHeader) verify(body []byte) error {
	if int64(len(body)) != h.Size || crc32.Checksum(body, castagnoli) != h.CRC32C {
		return fmt.Errorf("%w: body checksum mismatch", ErrCorrupt)
	}
	return nil
}

func (h fsHeader) attrs(key string) Attrs {
	return Attrs{Key: key, Size: h.Size, ETag: h.ETag, Meta: maps.Clone(h.Meta), LastModified: h.mtime}
}

// readSidecar reads and decodes the sidecar file at path.
func readSidecar(path string) (fsHeader, error) {
	file, err := os.Open(path)
	if err != nil {
		return fsHeader{}, err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return fsHeader{}, err
	}
	if st.Size() > fsMaxSidecarSz {
		return fsHeader{}, fmt.Errorf("%w %s: sidecar of %d bytes", ErrCorrupt, path, st.Size())
	}
	b := make([]byte, st.Size())
	if _, err := file.ReadAt(b, 0); err != nil {
		return fsHeader{}, err
	}
	h, err := decodeSidecar(b)
	if err != nil {
		return fsHeader{}, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// checkFormat reads root's format file. A root holding no object yet gets
// the current format; one holding objects but no format file is version 1
// and is refused with the command that migrates it.
func checkFormat(root string) error {
	b, err := os.ReadFile(filepath.Join(root, fsFormatFile))
	if err == nil {
		v, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if perr != nil || v != fsFormat {
			return fmt.Errorf("%w: %s holds format %q, this version reads %d", ErrFormat, root, strings.TrimSpace(string(b)), fsFormat)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if name := e.Name(); strings.HasSuffix(name, fsObjSuffix) || strings.HasSuffix(name, fsDirSuffix) {
			return fmt.Errorf("%w: %s is a version 1 data directory (objects behind a header); stop every process using it and run `cairn data migrate --data-dir %s`", ErrFormat, root, root)
		}
	}
	return writeFormat(root)
}

// writeFormat publishes root's format file atomically.
func writeFormat(root string) error {
	tmp, err := os.CreateTemp(root, ".*"+fsTmpSuffix)
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(strconv.Itoa(fsFormat) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(root, fsFormatFile))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return syncDir(root)
}
