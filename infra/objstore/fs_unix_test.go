//go:build unix

package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// TestFSLockHonoursContext holds every lock stripe the way another process
// would (flock on separate open files) and expects a writer to give up at
// its deadline without writing, then to succeed once the locks are free.
func TestFSLockHonoursContext(t *testing.T) {
	root := t.TempDir()
	s := newFS(t, root)
	var held []*os.File
	for i := range 64 {
		f, err := os.OpenFile(filepath.Join(root, ".cairn-locks", fmt.Sprintf("%02x", i)), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		held = append(held, f)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.PutIfAbsent(ctx, "k", []byte("x"), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PutIfAbsent against a held lock: err = %v, want DeadlineExceeded", err)
	}
	if _, err := s.Head(t.Context(), "k"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("a PutIfAbsent that timed out on the lock wrote: Head err = %v", err)
	}
	for _, f := range held {
		f.Close()
	}
	if _, err := s.PutIfAbsent(t.Context(), "k", []byte("x"), nil); err != nil {
		t.Fatalf("PutIfAbsent after the locks were released: %v", err)
	}
}
