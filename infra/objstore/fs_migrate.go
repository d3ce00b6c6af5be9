package objstore

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MigrateFS converts the data directory root from format 1 (every object
// file starts with a "CAIRNOBJ" header) to the current format (the object
// file holds the object's bytes alone, a sidecar its ETag and metadata),
// keeping every object's bytes, ETag and user metadata. It returns how many
// objects it converted; a directory already in the current format is left
// as it is (0, nil).
//
// No process may use root meanwhile: stop every `cairn serve` on it first.
// A migration stopped anywhere (a crash, an error) is finished by running
// it again: each object is converted like a write (pending sidecar, object
// file renamed into place, sidecar renamed), and the format file is
// written last. A format 1 object whose header or body fails its checks
// stops the migration with an error wrapping ErrCorrupt, naming the file.
func MigrateFS(ctx context.Context, root string) (int, error) {
	if _, err := os.Stat(filepath.Join(root, fsFormatFile)); err == nil {
		return 0, checkFormat(root)
	}
	if _, err := os.Stat(root); err != nil {
		return 0, fmt.Errorf("objstore fs: migrate: %w", err)
	}
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && !strings.HasSuffix(d.Name(), fsDirSuffix) {
				return filepath.SkipDir // .cairn-locks, foreign directories
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), fsObjSuffix) {
			return nil
		}
		converted, err := migrateObject(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if converted {
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("objstore fs: migrate %s: %w", root, err)
	}
	if err := writeFormat(root); err != nil {
		return n, fmt.Errorf("objstore fs: migrate %s: %w", root, err)
	}
	return n, nil
}

// migrateObject converts one format 1 object file in place. A file whose
// sidecar already describes it was converted by an earlier run.
func migrateObject(path string) (bool, error) {
	f := &FS{} // recoverLocked uses no field
	if err := f.recoverLocked(path); err != nil {
		return false, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	if h, err := readSidecar(path + fsSidecarSuffix); err == nil && h.verify(b) == nil {
		return false, nil
	}
	h, n, err := decodeHeader(b, fsV1Magic, fsV1Version)
	if err != nil {
		return false, fmt.Errorf("not a format 1 object file: %w", err)
	}
	body := b[n:]
	if err := h.verify(body); err != nil {
		return false, err
	}
	side, err := encodeHeader(fsMetaMagic, fsMetaVersion, h)
	if err != nil {
		return false, err
	}
	if err := writeSynced(path+fsSidecarSuffix+fsNextSuffix, side); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".*"+fsTmpSuffix)
	if err != nil {
		return false, err
	}
	_, err = tmp.Write(body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// LastModified is the object's age, which GC's grace periods read.
		err = os.Chtimes(tmp.Name(), st.ModTime(), st.ModTime())
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return false, err
	}
	return true, publishSidecar(path)
}
