//go:build unix

package objstore

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/cairnlog/cairn/infra/backoff"
)

// flockExclusive takes an exclusive flock(2) on file. It polls with a
// non-blocking attempt so that a wait honours ctx: a process frozen while
// holding the lock must not wedge its peers beyond their deadlines.
func flockExclusive(ctx context.Context, file *os.File) error {
	fd := int(file.Fd())
	pauses := flockBackoff.Start()
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
		if err := pauses.Wait(ctx); err != nil {
			return err
		}
	}
}

// flockBackoff is the pause between tries of a taken lock: 50 µs doubling
// up to 5 ms, jittered so that waiting processes do not retry in step.
var flockBackoff = backoff.Policy{Min: 50 * time.Microsecond, Max: 5 * time.Millisecond}
