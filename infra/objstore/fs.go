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

// Filesystem layout (data directory format 2, fs_format.go). Every key
// element but the last names a directory with the suffix ".d", the last names
// the object file, whose whole content is the object's bytes, with the suffix
// ".obj"; its sidecar (ETag, size, CRC32C, user metadata) sits beside it:
//
//	key "wal/p1/00000000000000000007"  ->  root/wal.d/p1.d/00000000000000000007.obj
//	                                       root/wal.d/p1.d/00000000000000000007.obj.meta
//
// Because files and directories carry different suffixes, a key may be both
// an object and the prefix of other keys ("a/b" -> a.d/b.obj and "a/b/c" ->
// a.d/b.d/c.obj), which a plain key-to-path mapping cannot store. Temporary
// files end in ".tmp", sidecars in ".obj.meta" (".obj.meta.next" while
// pending), the lock stripes live in ".cairn-locks" and the format in
// ".cairn-format"; none can collide with an encoded key, and List ignores
// them. A key element may be at most fsMaxElement bytes (the file-name limit
// less the longest suffix).
const (
	fsObjSuffix  = ".obj"
	fsDirSuffix  = ".d"
	fsTmpSuffix  = ".tmp"
	fsLockDir    = ".cairn-locks"
	fsStripes    = 64
	fsMaxElement = 255 - len(fsObjSuffix+fsSidecarSuffix+fsNextSuffix)
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
// Writes are durable when they return: the object's bytes are written to a
// temporary file in the target directory and fsynced, its sidecar to
// NAME.obj.meta.next and fsynced; the object file is published with link(2)
// (PutIfAbsent, which fails atomically if the key exists) or rename(2)
// (PutIfMatch, Put), the sidecar renamed to NAME.obj.meta, and the directory
// fsynced. Every mutation of a key holds the key's lock stripe: an
// in-process semaphore plus an exclusive flock(2) on root/.cairn-locks/NN,
// so the ETag check of PutIfMatch and the renames that follow are one atomic
// step for every process. Readers take no lock: they open the object file
// (which pins that version) and then read the sidecar, and accept the pair
// only if the sidecar describes that file (size; CRC32C too when Get reads
// the bytes). A reader that meets a write between its two renames takes the
// key's stripe and reads again; a write that crashed there is finished (or
// undone, if its object file never landed) under the stripe by the next
// reader or writer of the key.
//
// ETags are random (128 bits) and never reused, so a stale ETag can never
// match a later write of the same bytes (no ABA). Get verifies the CRC32C,
// GetRange reads only the requested bytes.
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
// Several FS values, in one process or many, may share one root. A root
// written by an older Cairn (data directory format 1) is refused with an
// error wrapping ErrFormat that names the command migrating it (MigrateFS).
func NewFS(root string) (*FS, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("objstore fs: root %q: %w", root, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, fsLockDir), 0o755); err != nil {
		return nil, fmt.Errorf("objstore fs: %w", err)
	}
	if err := checkFormat(abs); err != nil {
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
	file, h, body, err := f.open(ctx, "get", key, true)
	if err != nil {
		return Object{}, err
	}
	file.Close()
	return Object{Attrs: h.attrs(key), Body: body}, nil
}

// GetIfNoneMatch compares the ETag in the object's sidecar before reading
// its bytes; an object at another ETag is then read as by Get (whatever
// version is current by then).
func (f *FS) GetIfNoneMatch(ctx context.Context, key, etag string) (Object, error) {
	if etag == "" {
		return f.Get(ctx, key)
	}
	file, h, _, err := f.open(ctx, "get-if-none-match", key, false)
	if err != nil {
		return Object{}, err
	}
	file.Close()
	if h.ETag == etag {
		return Object{}, fmt.Errorf("objstore fs: get-if-none-match %s: %w", key, ErrNotModified)
	}
	return f.Get(ctx, key)
}

func (f *FS) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("objstore fs: get range %s: negative offset %d", key, off)
	}
	file, h, _, err := f.open(ctx, "get range", key, false)
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
	return &fileSection{SectionReader: io.NewSectionReader(file, off, end-off), file: file}, nil
}

func (f *FS) Head(ctx context.Context, key string) (Attrs, error) {
	file, h, _, err := f.open(ctx, "head", key, false)
	if err != nil {
		return Attrs{}, err
	}
	file.Close()
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
	if err := f.recoverLocked(path); err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	// Refuse before writing a pending sidecar: one left by a crash beside
	// an existing object of the same bytes would otherwise be taken for
	// a published write and change the object's ETag.
	if _, err := os.Lstat(path); err == nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, ErrExists)
	}
	etag := newETag()
	tmp, err := f.writeTemp(path, etag, body, meta)
	if err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	// link(2) publishes the complete object file and fails if the name
	// exists, atomically even for a process that ignored the lock.
	err = os.Link(tmp, path)
	os.Remove(tmp)
	if err != nil {
		os.Remove(path + fsSidecarSuffix + fsNextSuffix)
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, ErrExists)
		}
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	if err := publishSidecar(path); err != nil {
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
	if err := f.recoverLocked(path); err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	_, statErr := os.Stat(path)
	cur, err := readSidecar(path + fsSidecarSuffix)
	if errors.Is(statErr, fs.ErrNotExist) || (statErr == nil && errors.Is(err, fs.ErrNotExist)) {
		// A sidecar without its object file is what a Delete that crashed
		// between its two unlinks leaves: no object.
		return "", fmt.Errorf("objstore fs: %s %s: no object: %w", op, key, ErrConflict)
	}
	if statErr != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, statErr)
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
	if err := f.recoverLocked(path); err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
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
		os.Remove(path + fsSidecarSuffix + fsNextSuffix)
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	if err := publishSidecar(path); err != nil {
		return "", fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	return etag, nil
}

// publishSidecar renames the pending sidecar of the object file just
// published at path into place and makes both names durable.
func publishSidecar(path string) error {
	if err := os.Rename(path+fsSidecarSuffix+fsNextSuffix, path+fsSidecarSuffix); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// recoverLocked finishes or undoes a write that stopped (a crash) between
// writing its pending sidecar and renaming it into place. The pending
// sidecar is written and fsynced before the object file is published, so
// if the object file at path is the one it describes (size and CRC32C),
// the write was published and its sidecar takes its place; otherwise the
// write never happened and the pending sidecar goes. The caller holds the
// key's stripe, so no write is in flight.
func (f *FS) recoverLocked(path string) error {
	next := path + fsSidecarSuffix + fsNextSuffix
	b, err := os.ReadFile(next)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if h, err := decodeSidecar(b); err == nil {
		if body, err := os.ReadFile(path); err == nil && h.verify(body) == nil {
			return publishSidecar(path)
		}
	}
	if err := os.Remove(next); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
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
	// The object file goes first: it is what makes the key exist, and a
	// sidecar left alone by a crash is overwritten by the next write.
	err = os.Remove(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("objstore fs: delete %s: %w", key, err)
	}
	existed := err == nil
	for _, side := range []string{path + fsSidecarSuffix, path + fsSidecarSuffix + fsNextSuffix} {
		if err := os.Remove(side); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("objstore fs: delete %s: %w", key, err)
		}
	}
	if !existed {
		return nil
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

// errTorn: an object file and its sidecar do not belong together, because
// a write is between publishing one and the other (or stopped there).
var errTorn = errors.New("object file and sidecar disagree")

// open opens key's object file and reads its sidecar (and, if whole, its
// bytes, checked against the sidecar). Readers take no lock; a reader that
// meets a write halfway (errTorn) takes the key's stripe, which waits for
// the write, finishes a crashed one (recoverLocked) and reads again.
func (f *FS) open(ctx context.Context, op, key string, whole bool) (*os.File, fsHeader, []byte, error) {
	path, err := f.objectPath(ctx, key)
	if err != nil {
		return nil, fsHeader{}, nil, err
	}
	file, h, body, err := openPair(path, whole)
	if errors.Is(err, errTorn) {
		unlock, lerr := f.lock(ctx, key)
		if lerr != nil {
			return nil, fsHeader{}, nil, fmt.Errorf("objstore fs: %s %s: %w", op, key, lerr)
		}
		if rerr := f.recoverLocked(path); rerr != nil {
			unlock()
			return nil, fsHeader{}, nil, fmt.Errorf("objstore fs: %s %s: %w", op, key, rerr)
		}
		file, h, body, err = openPair(path, whole)
		unlock()
		if errors.Is(err, errTorn) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fsHeader{}, nil, fmt.Errorf("objstore fs: %s %s: %w", op, key, ErrNotFound)
	}
	if err != nil {
		return nil, fsHeader{}, nil, fmt.Errorf("objstore fs: %s %s: %w", op, key, err)
	}
	return file, h, body, nil
}

// openPair opens the object file at path, then reads its sidecar: the open
// file pins one version, and the sidecar must describe it (its size, and
// its CRC32C when whole reads the bytes), with no write pending. It returns an error wrapping
// fs.ErrNotExist if there is no object file.
func openPair(path string, whole bool) (*os.File, fsHeader, []byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fsHeader{}, nil, err
	}
	fail := func(err error) (*os.File, fsHeader, []byte, error) {
		file.Close()
		return nil, fsHeader{}, nil, err
	}
	st, err := file.Stat()
	if err != nil {
		return fail(err)
	}
	h, err := readSidecar(path + fsSidecarSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("%w: no sidecar", errTorn))
	}
	if err != nil {
		return fail(err)
	}
	if h.Size != st.Size() {
		return fail(fmt.Errorf("%w: sidecar says %d bytes, file has %d", errTorn, h.Size, st.Size()))
	}
	// A pending sidecar means a write is between its renames, or stopped
	// there: the object file may be newer than the sidecar, same size.
	if _, err := os.Lstat(path + fsSidecarSuffix + fsNextSuffix); err == nil {
		return fail(fmt.Errorf("%w: a write is pending", errTorn))
	}
	h.mtime = st.ModTime()
	var body []byte
	if whole {
		body = make([]byte, h.Size)
		if _, err := file.ReadAt(body, 0); err != nil && !(errors.Is(err, io.EOF) && h.Size == 0) {
			return fail(fmt.Errorf("read body: %w", err))
		}
		if err := h.verify(body); err != nil {
			return fail(fmt.Errorf("%w: %w", errTorn, err))
		}
	}
	return file, h, body, nil
}

// writeTemp writes body as a complete, fsynced object file beside path and
// returns its name, then writes and fsyncs the pending sidecar
// (path.meta.next) that publishSidecar renames into place once the object
// file is published. It creates missing directories (fsyncing each new
// one's parent), and recreates them if a concurrent Delete pruned them
// meanwhile. The caller holds the key's stripe.
func (f *FS) writeTemp(path, etag string, body []byte, meta map[string]string) (string, error) {
	side, err := encodeSidecar(etag, body, meta)
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
	if err := writeSynced(path+fsSidecarSuffix+fsNextSuffix, side); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// writeSynced writes b as the whole content of the file name and fsyncs it.
func writeSynced(name string, b []byte) error {
	file, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = file.Write(b)
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	return err
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
		a, err := f.Head(ctx, e.sort)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return fmt.Errorf("objstore fs: list %q: %w", prefix, err)
		}
		if err := fn(a); err != nil {
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
