package objstore

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxKeyLen is the longest key any adapter accepts (S3's limit).
const MaxKeyLen = 1024

// ValidateKey rejects keys that no adapter may store: empty, too long, not
// UTF-8, holding NUL or other control bytes, absolute, or with an empty, "."
// or ".." path element (so a key can never escape a filesystem root). The
// error wraps ErrInvalidKey.
func ValidateKey(key string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why) }
	switch {
	case key == "":
		return bad("empty")
	case len(key) > MaxKeyLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	case !utf8.ValidString(key):
		return bad("not valid UTF-8")
	case strings.HasPrefix(key, "/"):
		return bad("absolute")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return bad("control character or backslash")
		}
	}
	for _, el := range strings.Split(key, "/") {
		if el == "" || el == "." || el == ".." {
			return bad("empty, '.' or '..' path element")
		}
	}
	return nil
}

// ValidatePrefix is ValidateKey for a listing prefix: it may be empty, may
// end with "/", and may end in a partial element ("wal/p1/0000").
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return ValidateKey(strings.TrimSuffix(prefix, "/"))
}
