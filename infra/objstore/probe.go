package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
)

// Probe checks at start-up that s honours the conditions Cairn relies on,
// using two fresh keys under the "directory" scratchPrefix (for example
// "probe", "" for the top level), which it deletes again:
//
//   - PutIfAbsent creates a key, and a second PutIfAbsent fails with ErrExists;
//   - a write is visible to the next Get (read-after-write, ETag included);
//   - PutIfMatch with the current ETag succeeds and yields a new ETag;
//   - PutIfMatch with a stale ETag fails with ErrConflict;
//   - PutIfMatch on a missing key fails with ErrConflict and creates nothing
//     (some MinIO releases accept If-Match on a missing key, which would let
//     a late CAS recreate a deleted record);
//   - Delete makes the key unreadable.
//
// A condition the store does not honour yields an error wrapping
// ErrUnsupported that names it. A failure to talk to the store is returned
// wrapped as is (IsRetryable tells whether to probe again). Safe to run
// concurrently, also from several processes: every run uses its own keys.
func Probe(ctx context.Context, s Store, scratchPrefix string) error {
	if scratchPrefix != "" && !strings.HasSuffix(scratchPrefix, "/") {
		scratchPrefix += "/"
	}
	base := scratchPrefix + "cairn-probe-" + rand.Text()
	key, missing := base+"/cas", base+"/missing"
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("probe: scratch prefix %q: %w", scratchPrefix, err)
	}
	unsupported := func(format string, args ...any) error {
		return fmt.Errorf("probe %s: %w: %s", key, ErrUnsupported, fmt.Sprintf(format, args...))
	}
	failed := func(step string, err error) error { return fmt.Errorf("probe %s: %s: %w", key, step, err) }
	// wrong reports a condition answered with an unexpected error: a
	// capability problem unless the failure is worth retrying.
	wrong := func(step string, err error) error {
		if IsRetryable(err) || errors.Is(err, context.Canceled) {
			return failed(step, err)
		}
		return fmt.Errorf("probe %s: %s: %w: %w", key, step, ErrUnsupported, err)
	}
	defer func() {
		// Best-effort clean-up, also after the caller's ctx ended.
		cctx := context.WithoutCancel(ctx)
		_ = s.Delete(cctx, key)
		_ = s.Delete(cctx, missing)
	}()

	first := []byte("cairn probe: first version")
	etag1, err := s.PutIfAbsent(ctx, key, first, map[string]string{"cairn-probe": "1"})
	if err != nil {
		return failed("put-if-absent on a fresh key", err)
	}
	switch _, err := s.PutIfAbsent(ctx, key, []byte("cairn probe: must not land"), nil); {
	case err == nil:
		return unsupported("a second put-if-absent on an existing key succeeded (If-None-Match: * not honoured)")
	case !errors.Is(err, ErrExists):
		return wrong("second put-if-absent (want ErrExists)", err)
	}
	if err := probeRead(ctx, s, key, first, etag1); err != nil {
		return fmt.Errorf("probe %s: read-after-write of put-if-absent: %w", key, err)
	}

	second := []byte("cairn probe: second version")
	etag2, err := s.PutIfMatch(ctx, key, second, etag1)
	if errors.Is(err, ErrConflict) {
		return unsupported("put-if-match with the current ETag was refused: %v", err)
	}
	if err != nil {
		return failed("put-if-match with the current ETag", err)
	}
	if etag2 == etag1 {
		return unsupported("put-if-match of new bytes returned the old ETag %s", etag1)
	}
	switch _, err := s.PutIfMatch(ctx, key, []byte("cairn probe: stale write"), etag1); {
	case err == nil:
		return unsupported("put-if-match with a stale ETag succeeded (If-Match not honoured)")
	case !errors.Is(err, ErrConflict):
		return wrong("put-if-match with a stale ETag (want ErrConflict)", err)
	}
	if err := probeRead(ctx, s, key, second, etag2); err != nil {
		return fmt.Errorf("probe %s: read-after-write of put-if-match: %w", key, err)
	}

	switch _, err := s.PutIfMatch(ctx, missing, []byte("cairn probe: must not be created"), etag2); {
	case err == nil:
		return unsupported("put-if-match on a missing key succeeded: the store accepts If-Match on a missing key (as some MinIO releases do), so a late CAS could recreate a deleted record")
	case !errors.Is(err, ErrConflict):
		return wrong("put-if-match on a missing key (want ErrConflict)", err)
	}
	switch _, err := s.Head(ctx, missing); {
	case err == nil:
		return unsupported("a refused put-if-match on a missing key created it")
	case !errors.Is(err, ErrNotFound):
		return failed("head after put-if-match on a missing key (want ErrNotFound)", err)
	}

	if err := s.Delete(ctx, key); err != nil {
		return failed("delete", err)
	}
	switch _, err := s.Get(ctx, key); {
	case err == nil:
		return unsupported("a deleted key is still readable")
	case !errors.Is(err, ErrNotFound):
		return failed("get after delete (want ErrNotFound)", err)
	}
	return nil
}

// probeRead checks that key holds body under etag. A different object
// (ErrNotFound included) wraps ErrUnsupported; a failed read is returned as
// is.
func probeRead(ctx context.Context, s Store, key string, body []byte, etag string) error {
	o, err := s.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: a written key is not readable: %v", ErrUnsupported, err)
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(o.Body, body) || o.ETag != etag {
		return fmt.Errorf("%w: read %q with ETag %s, want %q with ETag %s", ErrUnsupported, o.Body, o.ETag, body, etag)
	}
	return nil
}
