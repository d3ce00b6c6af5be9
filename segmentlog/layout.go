package segmentlog

import (
	"fmt"
	"strconv"
	"strings"
)

// Layout names every object Cairn keeps in the bucket (docs/architecture.md, "Bucket
// layout"). The zero value uses no prefix.
type Layout struct {
	Prefix string // without a trailing "/"; may be empty
}

func (l Layout) join(parts ...string) string {
	if l.Prefix == "" {
		return strings.Join(parts, "/")
	}
	return l.Prefix + "/" + strings.Join(parts, "/")
}

// OffsetDigits is the width of the zero-padded offset in WAL keys, so that
// lexical order is offset order.
const OffsetDigits = 20

// WALPrefix is the prefix of every batch object of pchannel p.
func (l Layout) WALPrefix(p string) string { return l.join("wal", p) + "/" }

// WAL is the key of the batch object at offset off of pchannel p.
func (l Layout) WAL(p string, off uint64) string {
	return l.WALPrefix(p) + fmt.Sprintf("%0*d", OffsetDigits, off)
}

// ParseWALOffset returns the offset of a WAL key of pchannel p.
func (l Layout) ParseWALOffset(p, key string) (uint64, bool) {
	rest, ok := strings.CutPrefix(key, l.WALPrefix(p))
	if !ok || len(rest) != OffsetDigits {
		return 0, false
	}
	off, err := strconv.ParseUint(rest, 10, 64)
	return off, err == nil
}

// Lease is the key of the lease record of pchannel p.
func (l Layout) Lease(p string) string { return l.join("meta", "leases", p+".json") }

// LeasePrefix is the prefix of every lease record.
func (l Layout) LeasePrefix() string { return l.join("meta", "leases") + "/" }

// Checkpoint is the key of the checkpoint record of pchannel p.
func (l Layout) Checkpoint(p string) string { return l.join("meta", "checkpoints", p+".json") }

// MaxNameLen is the longest pchannel or vchannel name.
const MaxNameLen = 128

// ValidateName checks a pchannel or vchannel name: 1 to MaxNameLen bytes of
// ASCII letters, digits, '_', '-' and '.', starting with a letter or digit.
// The error wraps ErrInvalidName. Every message appended is checked, so it
// is a loop over the bytes, not a regexp (a third of the CPU of decoding an
// append body); a test holds it to ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$.
func ValidateName(kind, name string) error {
	if len(name) == 0 || len(name) > MaxNameLen || !validNameBytes(name) || strings.Contains(name, "..") {
		return fmt.Errorf("%w: %s %q: want 1-%d of [A-Za-z0-9_.-], starting with a letter or digit, no '..'",
			ErrInvalidName, kind, name, MaxNameLen)
	}
	return nil
}

// validNameBytes: name (not empty) is ASCII letters, digits, '_', '.' and
// '-', starting with a letter or digit.
func validNameBytes(name string) bool {
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}
