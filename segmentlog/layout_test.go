package segmentlog

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// nameRE is the rule ValidateName implements by hand.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// validNameByRE is ValidateName's rule said with the regexp.
func validNameByRE(name string) bool {
	return len(name) > 0 && len(name) <= MaxNameLen && nameRE.MatchString(name) && !strings.Contains(name, "..")
}

// TestValidateNameIsTheRegexp: ValidateName accepts exactly the names the
// regexp of its documentation does: every name of up to 3 bytes over an
// alphabet of each byte class, and the edges of the length limit.
func TestValidateNameIsTheRegexp(t *testing.T) {
	alphabet := "aZ09_.-/ \x00\xff\x80é"
	names := []string{"", strings.Repeat("a", MaxNameLen), strings.Repeat("a", MaxNameLen+1), "v.0", "a..b", "ab."}
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		names = append(names, prefix)
		if n == 0 {
			return
		}
		for i := 0; i < len(alphabet); i++ {
			gen(prefix+alphabet[i:i+1], n-1)
		}
	}
	gen("", 3)
	for _, name := range names {
		err := ValidateName("vchannel", name)
		if want := validNameByRE(name); (err == nil) != want {
			t.Errorf("ValidateName(%q) = %v; the regexp says valid=%v", name, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, not wrapping ErrInvalidName", name, err)
		}
	}
}

// FuzzValidateName: ValidateName and the regexp agree on any name.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"v0", "a..b", "-a", "a-", "é", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if err, want := ValidateName("vchannel", name), validNameByRE(name); (err == nil) != want {
			t.Fatalf("ValidateName(%q) = %v; the regexp says valid=%v", name, err, want)
		}
	})
}
