//go:build unix

package objstore

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// flockExclusive takes an exclusive flock(2) on file. It polls with a
// non-blocking attempt so that a wait honours ctx: a process frozen while
// holding the lock must not wedge its peers beyond their deadlines.
func flockExclusive(ctx context.Context, file *os.File) error {
	fd := int(file.Fd())
	wait := 50 * time.Microsecond
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case !errors.Is(err, syscall.EWOULDBLOCK):
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		wait = min(2*wait, 5*time.Millisecond)
	}
}
