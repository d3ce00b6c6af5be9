//go:build !unix

package objstore

import (
	"context"
	"errors"
	"os"
)

// flockExclusive is unavailable without flock(2): the filesystem store
// refuses writes rather than give up its cross-process guarantee.
func flockExclusive(context.Context, *os.File) error {
	return errors.New("objstore fs: flock(2) is not available on this platform")
}
