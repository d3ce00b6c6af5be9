package objstore

import (
	"errors"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeV1 writes an object file of data directory format 1 (header in front
// of the bytes) under root, as Cairn before format 2 did.
func writeV1(t *testing.T, root, rel, etag string, body []byte, meta map[string]string) string {
	t.Helper()
	head, err := encodeHeader(fsV1Magic, fsV1Version, fsHeader{ETag: etag, Size: int64(len(body)), CRC32C: crc32.Checksum(body, castagnoli), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(head, body...), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMigrateFS(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, fsLockDir), 0o755); err != nil {
		t.Fatal(err)
	}
	type obj struct {
		key, etag string
		body      []byte
		meta      map[string]string
	}
	objs := []obj{
		{"wal/p0/00000000000000000000", `"A"`, []byte("batch"), map[string]string{"term": "1"}},
		{"wal/p0/00000000000000000001", `"B"`, []byte("CAIRNOBJ looks like a header"), nil},
		{"segments/v0/0-1-f.arrow", `"C"`, []byte("ARROW1"), map[string]string{"crc32c": "9"}},
		{"empty", `"D"`, nil, nil},
	}
	old := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	var first string
	for _, o := range objs {
		elems := strings.Split(o.key, "/")
		for i := range elems[:len(elems)-1] {
			elems[i] += fsDirSuffix
		}
		elems[len(elems)-1] += fsObjSuffix
		path := writeV1(t, root, filepath.Join(elems...), o.etag, o.body, o.meta)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
		if first == "" {
			first = path
		}
	}

	_, err := NewFS(root)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "cairn data migrate --data-dir "+root) {
		t.Fatalf("NewFS on a format 1 directory: %v; want ErrFormat naming the command", err)
	}
	// A migration stopped after its first object, and one stopped between
	// publishing an object file and its sidecar, are finished by the next.
	if ok, err := migrateObject(first); !ok || err != nil {
		t.Fatalf("migrateObject: %v, %v", ok, err)
	}
	if err := os.Rename(first+fsSidecarSuffix, first+fsSidecarSuffix+fsNextSuffix); err != nil {
		t.Fatal(err)
	}
	n, err := MigrateFS(ctx, root)
	if err != nil || n != len(objs)-1 {
		t.Fatalf("MigrateFS = %d, %v; want %d converted", n, err, len(objs)-1)
	}
	s, err := NewFS(root)
	if err != nil {
		t.Fatalf("NewFS after migration: %v", err)
	}
	for _, o := range objs {
		got, err := s.Get(ctx, o.key)
		if err != nil {
			t.Fatalf("Get %s: %v", o.key, err)
		}
		if string(got.Body) != string(o.body) || got.ETag != o.etag || !maps.Equal(got.Meta, o.meta) || !got.LastModified.Equal(old) {
			t.Errorf("%s: %q etag %s meta %v mtime %v; want %q %s %v %v", o.key, got.Body, got.ETag, got.Meta, got.LastModified, o.body, o.etag, o.meta, old)
		}
	}
	if n, err := MigrateFS(ctx, root); n != 0 || err != nil {
		t.Fatalf("second MigrateFS = %d, %v; want nothing to do", n, err)
	}
	if _, err := s.PutIfMatch(ctx, objs[0].key, []byte("next"), objs[0].etag); err != nil {
		t.Fatalf("PutIfMatch on a migrated object's ETag: %v", err)
	}
}

func TestFSRefusesNewerFormat(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, fsFormatFile), []byte("3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFS(root); !errors.Is(err, ErrFormat) {
		t.Fatalf("NewFS on format 3: %v, want ErrFormat", err)
	}
}

// TestFSCrashBetweenRenames: a write that stopped after publishing its
// object file but before renaming its sidecar is finished by the next
// reader; one that stopped before publishing its object file is undone.
func TestFSCrashBetweenRenames(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s, err := NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "k.obj")
	crash := func(body []byte, publish bool) string {
		t.Helper()
		etag := newETag()
		side, err := encodeSidecar(etag, body, map[string]string{"m": "1"})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+fsSidecarSuffix+fsNextSuffix, side, 0o644); err != nil {
			t.Fatal(err)
		}
		if publish {
			if err := os.WriteFile(path, body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return etag
	}
	// PutIfAbsent stopped after link(2): no sidecar yet.
	etag := crash([]byte("first"), true)
	o, err := s.Get(ctx, "k")
	if err != nil || string(o.Body) != "first" || o.ETag != etag || o.Meta["m"] != "1" {
		t.Fatalf("Get after a crashed PutIfAbsent: %q %s %v, %v", o.Body, o.ETag, o.Meta, err)
	}
	// PutIfMatch stopped after rename(2) of the object file, same size.
	etag = crash([]byte("secnd"), true)
	if a, err := s.Head(ctx, "k"); err != nil || a.ETag != etag {
		t.Fatalf("Head after a crashed PutIfMatch: %+v, %v; want ETag %s", a, err, etag)
	}
	// A write stopped before its object file landed never happened.
	crash([]byte("never"), false)
	o, err = s.Get(ctx, "k")
	if err != nil || string(o.Body) != "secnd" || o.ETag != etag {
		t.Fatalf("Get after an unpublished write: %q %s, %v", o.Body, o.ETag, err)
	}
	if _, err := s.PutIfMatch(ctx, "k", []byte("third"), etag); err != nil {
		t.Fatalf("PutIfMatch after an unpublished write: %v", err)
	}
	if _, err := os.Stat(path + fsSidecarSuffix + fsNextSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pending sidecar left behind: %v", err)
	}
}
