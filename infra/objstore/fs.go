package objstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Filesystem layout. Every key element but the last names a directory with
// the suffix ".d", the last names a file with the suffix ".obj":
//
//	key "wal/p1/00000000000000000007"  ->  root/wal.d/p1.d/00000000000000000007.obj
//
// Because files and directories carry different suffixes, a key may be both
// an object and the prefix of other keys ("a/b" -> a.d/b.obj and "a/b/c" ->
// a.d/b.d/c.obj), which a plain key-to-path mapping cannot store. Temporary
// files end in ".tmp" and the lock stripes live in ".cairn-locks"; neither can
// collide with an encoded key, and List ignores both. A key element may be at
// most fsMaxElement bytes (the file-name limit less the suffix).
const (
	fsObjSuffix  = ".obj"
	fsDirSuffix  = ".d"
	fsTmpSuffix  = ".tmp"
	fsLockDir    = ".cairn-locks"
	fsStripes    = 64
	fsMaxElement = 255 - len(fsObjSuffix)
	// fsMkdirRetries bounds how often a writer recreates a directory that a
	// concurrent Delete pruned between creating it and writing into it.
	fsMkdirRetries = 8
)

// FS is the local-filesystem Store, Cairn's embedded default. It keeps every
// guarantee of Store, and PutIfAbsent and PutIfMatch are linearizable per key
// across goroutines and across processes that share root on one machine
// (not over a network filesystem, where flock(2) may be advisory-only or
// emulated).
//
// Writes are durable when they return: the object is written to a temporary
// file in the target directory and fsynced, then published with link(2)
// (PutIfAbsent, which fails atomically if the key exists) or rename(2)
// (PutIfMatch, Put), and the directory is fsynced. Every mutation of a key
// holds the key's lock stripe: an in-process semaphore plus an exclusive
// flock(2) on root/.cairn-locks/NN, so the ETag check of PutIfMatch and the
// rename that follows are one atomic step for every process. Readers take no
// lock: rename and link publish whole files, so a reader sees the old object
// or the new one.
//
// ETags are random (128 bits) and never reused, so a stale ETag can never
// match a later write of the same bytes (no ABA). Each object file starts with
// a versioned header holding the ETag, the user metadata and a CRC32C of the
// body; Get verifies the CRC, GetRange reads only the requested bytes.
//
// A crash may leave "*.tmp" files behind; they are invisible to every
// operation. On a case-insensitive filesystem (macOS's default) keys that
// differ only in case name one file. FS is safe for concurrent use.
type FS struct {
	root string
	// stripes are the in-process half of the stripe locks: flock(2) is held
	// per open file description, so goroutines of one process serialise
	// here first (which also keeps blocked waiters off OS threads).
	stripes [fsStripes]chan struct{}
}

// NewFS returns a Store over the directory root, creating it if needed.
// Several FS values, in one process or many, may share one root.
func NewFS(root string) (*FS, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("objstore fs: root %q: %w", root, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, fsLockDir), 0o755); err != nil {
		return nil, fmt.Errorf("objstore fs: %w", err)
	}
	f := &FS{root: abs}
	for i := range f.stripes {
		f.stripes[i] = make(chan struct{}, 1)
	}
	return f, nil
}

// Root returns the absolute directory the store lives in.
func (f *FS) Root() string { return f.root }

func (f *FS) Get(ctx context.Context, key string) (Object, error) {
	file, h, err := f.open(ctx, "get", key)
	if err != nil {
		return Object{}, err
	}
	defer file.Close()
	body := make([]byte, h.Size)
	if _, err := file.ReadAt(body, h.bodyOff); err != nil {
		return Object{}, fmt.Errorf("objstore fs: get %s: read body: %w", key, err)
	}
	if err := h.verify(body); err != nil {
		return Object{}, fmt.Errorf("objstore fs: get %s: %w", key, err)
	}
	return Object{Attrs: h.attrs(key), Body: body}, nil
}

func (f *FS) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("objstore fs: get range %s: negative offset %d", key, off)
	}
	file, h, err := f.open(ctx, "get range", key)
	if err != nil {
		return nil, err
	}
	off = min(off, h.Size)
	end := h.Size
	if n >= 0 && n < end-off {
		end = off + n
	}
	// The open file pins this version of the object: a concurrent rename
	// or unlink does not change what the section reads.
	return &fileSection{SectionReader: io.NewSectionReader(file, h.bodyOff+off, end-off), file: file}, nil
}

func (f *FS) Head(ctx context.Context, key string) (Attrs, error) {
	file, h, err := f.open(ctx, "head", key)
	if err != nil {
		return Attrs{}, err
	}
	defer file.Close()
	return h.attrs(key), nil
}

func (f *FS) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	const op = "put-if-absent"
	path, err := f.objectPath(ctx, key)
	if err != nil {
		return "", err
	}
	unlock, err := f.lock(ctx, key)
	if err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	defer unlock()
	etag := newETag()
	tmp, err := f.writeTemp(path, etag, body, meta)
	if err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	// link(2) publishes the complete file and fails if the name exists,
	// atomically even for a process that ignored the lock.
	err = os.Link(tmp, path)
	os.Remove(tmp)
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	return etag, nil
}

func (f *FS) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	const op = "put-if-match"
	path, err := f.objectPath(ctx, key)
	if err != nil {
		return "", err
	}
	unlock, err := f.lock(ctx, key)
	if err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	defer unlock()
	cur, err := f.readHeaderAt(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("objstore fs: %s %s: no object: %w", op, key, ErrConflict)
	}
	if err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	if cur.ETag != etag {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, ErrConflict)
	}
	return f.replaceLocked(op, key, path, body)
}

func (f *FS) Put(ctx context.Context, key string, body []byte) (string, error) {
	const op = "put"
	path, err := f.objectPath(ctx, key)
	if err != nil {
		return "", err
	}
	unlock, err := f.lock(ctx, key)
	if err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	defer unlock()
	return f.replaceLocked(op, key, path, body)
}

// replaceLocked writes a new version of key (no user metadata, as an S3
// PUT) and renames it over path. The caller holds the key's stripe.
func (f *FS) replaceLocked(op, key, path string, body []byte) (string, error) {
	etag := newETag()
	tmp, err := f.writeTemp(path, etag, body, nil)
	if err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	return etag, nil
}

func (f *FS) Delete(ctx context.Context, key string) error {
	path, err := f.objectPath(ctx, key)
	if err != nil {
		return err
	}
	unlock, err := f.lock(ctx, key)
	if err != nil {
		return fmt.Errorf("objstore fs: delete %s: %w", key, err)
	}
	defer unlock()
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("objstore fs: delete %s: %w", key, err)
	}
	dir := filepath.Dir(path)
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("objstore fs: delete %s: %w", key, err)
	}
	f.pruneDirs(dir)
	return nil
}

// pruneDirs removes dir and its parents while they are empty, never the
// root. It is best-effort: a writer that loses its fresh directory to a
// concurrent prune recreates it (see writeTemp).
func (f *FS) pruneDirs(dir string) {
	for dir != f.root && strings.HasPrefix(dir, f.root+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// objectPath validates ctx and key and maps the key to its object file.
func (f *FS) objectPath(ctx context.Context, key string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	elems := strings.Split(key, "/")
	for i, el := range elems {
		if len(el) > fsMaxElement {
			return "", fmt.Errorf("%w %q: path element longer than %d bytes (filesystem store)", ErrInvalidKey, key, fsMaxElement)
		}
		if i < len(elems)-1 {
			elems[i] = el + fsDirSuffix
		} else {
			elems[i] = el + fsObjSuffix
		}
	}
	return filepath.Join(f.root, filepath.Join(elems...)), nil
}

// open opens key's object file and reads its header.
func (f *FS) open(ctx context.Context, op, key string) (*os.File, fsHeader, error) {
	path, err := f.objectPath(ctx, key)
	if err != nil {
		return nil, fsHeader{}, err
	}
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fsHeader{}, fmt.Errorf("objstore fs: %s %s: %w", op, key, ErrNotFound)
	}
	if err != nil {
		return nil, fsHeader{}, fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	h, err := readHeader(file)
	if err != nil {
		file.Close()
		return nil, fsHeader{}, fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	return file, h, nil
}

// readHeaderAt reads the header of the object file at path.
func (f *FS) readHeaderAt(path string) (fsHeader, error) {
	file, err := os.Open(path)
	if err != nil {
		return fsHeader{}, err
	}
	defer file.Close()
	return readHeader(file)
}

// writeTemp writes a complete, fsynced object file beside path and returns
// its name. It creates missing directories (fsyncing each new one's parent),
// and recreates them if a concurrent Delete pruned them meanwhile.
func (f *FS) writeTemp(path, etag string, body []byte, meta map[string]string) (string, error) {
	head, err := encodeHeader(etag, body, meta)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(path)
	var tmp *os.File
	for attempt := 0; ; attempt++ {
		if err := f.ensureDir(dir); err != nil {
			return "", err
		}
		tmp, err = os.CreateTemp(dir, ".*"+fsTmpSuffix)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == fsMkdirRetries {
			return "", err
		}
	}
	name := tmp.Name()
	fail := func(err error) (string, error) {
		tmp.Close()
		os.Remove(name)
		return "", err
	}
	if _, err := tmp.Write(head); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(body); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// ensureDir creates dir and any missing parents below the root, fsyncing
// the parent of every directory it creates so the new entry is durable.
func (f *FS) ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	rel, err := filepath.Rel(f.root, dir)
	if err != nil {
		return err
	}
	cur := f.root
	for _, el := range strings.Split(rel, string(filepath.Separator)) {
		next := filepath.Join(cur, el)
		err := os.Mkdir(next, 0o755)
		switch {
		case err == nil:
			if err := syncDir(cur); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
		default:
			return err
		}
		cur = next
	}
	return nil
}

// lock takes key's stripe: the in-process semaphore, then an exclusive
// flock(2) on the stripe's lock file. Both waits honour ctx.
func (f *FS) lock(ctx context.Context, key string) (unlock func(), err error) {
	h := fnv.New32a()
	h.Write([]byte(key))
	i := h.Sum32() % fsStripes
	sem := f.stripes[i]
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	name := filepath.Join(f.root, fsLockDir, fmt.Sprintf("%02x", i))
	file, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		<-sem
		return nil, fmt.Errorf("lock stripe: %w", err)
	}
	if err := flockExclusive(ctx, file); err != nil {
		file.Close()
		<-sem
		return nil, fmt.Errorf("lock stripe: %w", err)
	}
	return func() {
		file.Close() // releases the flock
		<-sem
	}, nil
}

// List walks the directory tree in key order. A directory is entered only
// if keys below it can match prefix and sort after startAfter. Objects
// deleted while the walk runs are skipped; objects written meanwhile may or
// may not be seen.
func (f *FS) List(ctx context.Context, prefix, startAfter string, fn func(Attrs) error) error {
	if err := ValidatePrefix(prefix); err != nil {
		return err
	}
	err := f.walk(ctx, f.root, "", prefix, startAfter, fn)
	if errors.Is(err, ErrStopList) {
		return nil
	}
	return err
}

// walk lists dir, whose keys all start with keyPrefix ("" or ending in "/").
func (f *FS) walk(ctx context.Context, dir, keyPrefix, prefix, startAfter string, fn func(Attrs) error) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // pruned by a concurrent Delete
	}
	if err != nil {
		return fmt.Errorf("objstore fs: list %q: %w", prefix, err)
	}
	type entry struct {
		name  string
		sort  string // key of an object, key prefix + "/" of a directory
		isDir bool
	}
	list := make([]entry, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.Type().IsRegular() && strings.HasSuffix(name, fsObjSuffix):
			list = append(list, entry{name, keyPrefix + strings.TrimSuffix(name, fsObjSuffix), false})
		case e.IsDir() && strings.HasSuffix(name, fsDirSuffix):
			list = append(list, entry{name, keyPrefix + strings.TrimSuffix(name, fsDirSuffix) + "/", true})
		}
	}
	// A directory's keys all start with its "elem/", and no key element
	// holds '/', so ordering objects by key and directories by "elem/"
	// yields the keys below dir in byte order.
	sort.Slice(list, func(i, j int) bool { return list[i].sort < list[j].sort })
	for _, e := range list {
		if err := ctx.Err(); err != nil {
			return err
		}
		inPrefix := strings.HasPrefix(e.sort, prefix)
		if !inPrefix && e.sort > prefix {
			return nil // past every key with the prefix
		}
		path := filepath.Join(dir, e.name)
		if e.isDir {
			below := inPrefix || strings.HasPrefix(prefix, e.sort)
			// Every key below sorts after e.sort; all of them sort before
			// startAfter if startAfter is larger and not below this dir.
			before := startAfter > e.sort && !strings.HasPrefix(startAfter, e.sort)
			if !below || before {
				continue
			}
			if err := f.walk(ctx, path, e.sort, prefix, startAfter, fn); err != nil {
				return err
			}
			continue
		}
		if !inPrefix || e.sort <= startAfter {
			continue
		}
		h, err := f.readHeaderAt(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return fmt.Errorf("objstore fs: list %q: %s: %w", prefix, e.sort, err)
		}
		if err := fn(h.attrs(e.sort)); err != nil {
			return err
		}
	}
	return nil
}

// fileSection is a GetRange reader over one pinned version of an object.
type fileSection struct {
	*io.SectionReader
	file *os.File
}

func (s *fileSection) Close() error { return s.file.Close() }

// newETag returns a fresh, quoted, random ETag (128 bits of entropy).
func newETag() string { return strconv.Quote(rand.Text()) }

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
