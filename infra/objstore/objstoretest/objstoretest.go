package objstoretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// opTimeout bounds every subtest: a hung store fails fast instead of
// eating the whole test binary's timeout.
const opTimeout = 2 * time.Minute

// Run runs the acceptance suite against stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, ctx context.Context, s objstore.Store)
	}{
		{"ReadAfterWrite", testReadAfterWrite},
		{"PutOverwrites", testPutOverwrites},
		{"EmptyObject", testEmptyObject},
		{"Missing", testMissing},
		{"LexicalOrder", testLexicalOrder},
		{"ListPagination", testListPagination},
		{"PutIfAbsentRace", testPutIfAbsentRace},
		{"PutIfMatchRace", testPutIfMatchRace},
		{"StaleETag", testStaleETag},
		{"PutIfMatchMissing", testPutIfMatchMissing},
		{"GetIfNoneMatch", testGetIfNoneMatch},
		{"Metadata", testMetadata},
		{"GetRange", testGetRange},
		{"LargeObject", testLargeObject},
		{"Delete", testDelete},
		{"InvalidKeys", testInvalidKeys},
		{"CanceledContext", testCanceledContext},
		{"Probe", testProbe},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
			defer cancel()
			tc.fn(t, ctx, newStore(t))
		})
	}
}

func testReadAfterWrite(t *testing.T, ctx context.Context, s objstore.Store) {
	body := []byte("hello, cairn")
	etag := mustPutIfAbsent(t, ctx, s, "raw/k", body, nil)
	if etag == "" {
		t.Fatal("PutIfAbsent returned an empty ETag")
	}
	o := mustGet(t, ctx, s, "raw/k")
	if !bytes.Equal(o.Body, body) {
		t.Fatalf("Get body = %q, want %q", o.Body, body)
	}
	if o.Key != "raw/k" || o.ETag != etag || o.Size != int64(len(body)) {
		t.Fatalf("Get attrs = {Key %q, ETag %s, Size %d}, want {raw/k, %s, %d}", o.Key, o.ETag, o.Size, etag, len(body))
	}
	if o.LastModified.IsZero() {
		t.Error("Get: LastModified is zero")
	}
	a, err := s.Head(ctx, "raw/k")
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if a.Key != "raw/k" || a.ETag != etag || a.Size != int64(len(body)) {
		t.Fatalf("Head = {Key %q, ETag %s, Size %d}, want {raw/k, %s, %d}", a.Key, a.ETag, a.Size, etag, len(body))
	}
	keys := listKeys(t, ctx, s, "raw/", "")
	if !slices.Equal(keys, []string{"raw/k"}) {
		t.Fatalf("List = %q, want [raw/k]", keys)
	}
}

func testPutOverwrites(t *testing.T, ctx context.Context, s objstore.Store) {
	e1 := mustPut(t, ctx, s, "ow/k", []byte("version one"))
	e2 := mustPut(t, ctx, s, "ow/k", []byte("version two, longer"))
	if e1 == e2 {
		t.Fatalf("two Puts of different bytes returned one ETag %s", e1)
	}
	o := mustGet(t, ctx, s, "ow/k")
	if string(o.Body) != "version two, longer" || o.ETag != e2 {
		t.Fatalf("Get = %q (ETag %s), want the second version (ETag %s)", o.Body, o.ETag, e2)
	}
	// Put also overwrites an object created with PutIfAbsent.
	mustPutIfAbsent(t, ctx, s, "ow/created", []byte("created"), map[string]string{"a": "b"})
	e3 := mustPut(t, ctx, s, "ow/created", []byte("replaced"))
	o = mustGet(t, ctx, s, "ow/created")
	if string(o.Body) != "replaced" || o.ETag != e3 || len(o.Meta) != 0 {
		t.Fatalf("Get after Put = %q (ETag %s, meta %v), want \"replaced\" (ETag %s, no meta)", o.Body, o.ETag, o.Meta, e3)
	}
}

func testEmptyObject(t *testing.T, ctx context.Context, s objstore.Store) {
	mustPutIfAbsent(t, ctx, s, "empty", nil, nil)
	o := mustGet(t, ctx, s, "empty")
	if len(o.Body) != 0 || o.Size != 0 {
		t.Fatalf("Get of an empty object = %d bytes (Size %d)", len(o.Body), o.Size)
	}
	if got := mustRange(t, ctx, s, "empty", 0, -1); len(got) != 0 {
		t.Fatalf("GetRange(0, -1) of an empty object = %q", got)
	}
}

func testMissing(t *testing.T, ctx context.Context, s objstore.Store) {
	if _, err := s.Get(ctx, "no/such/key"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Get of a missing key: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Head(ctx, "no/such/key"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Head of a missing key: err = %v, want ErrNotFound", err)
	}
	if rc, err := s.GetRange(ctx, "no/such/key", 0, 10); !errors.Is(err, objstore.ErrNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("GetRange of a missing key: err = %v, want ErrNotFound", err)
	}
	if keys := listKeys(t, ctx, s, "no/", ""); len(keys) != 0 {
		t.Errorf("List of an empty prefix = %q", keys)
	}
}

// testLexicalOrder lists keys whose byte order differs from a naive
// directory walk: '-' and '.' sort before '/', which sorts before '0'. No
// key is a whole-element prefix of another (see objstore.Store).
func testLexicalOrder(t *testing.T, ctx context.Context, s objstore.Store) {
	keys := []string{
		"lex/a-b", "lex/a.b", "lex/a/b", "lex/a/c/d", "lex/a0",
		"lex/a.obj/x", "lex/a.d/y", "lex/a.e", "lex/b", "lex/ä", "lex/~",
	}
	for _, k := range keys {
		mustPut(t, ctx, s, k, []byte(k))
	}
	mustPut(t, ctx, s, "lew", nil) // just below the prefix
	mustPut(t, ctx, s, "ley", nil) // just above it
	want := slices.Sorted(slices.Values(keys))
	if got := listKeys(t, ctx, s, "lex/", ""); !slices.Equal(got, want) {
		t.Fatalf("List(lex/) =\n  %q\nwant\n  %q", got, want)
	}
	for _, after := range []string{"lex/a", "lex/a.", "lex/a/", "lex/a/b", "lex/a/c", "lex/a/c/d", "lex/a/d", "lex/a0", "lex/zz"} {
		var wantAfter []string
		for _, k := range want {
			if k > after {
				wantAfter = append(wantAfter, k)
			}
		}
		if got := listKeys(t, ctx, s, "lex/", after); !slices.Equal(got, wantAfter) {
			t.Errorf("List(lex/, after %q) = %q, want %q", after, got, wantAfter)
		}
	}
	if got := listKeys(t, ctx, s, "lex/a/", ""); !slices.Equal(got, []string{"lex/a/b", "lex/a/c/d"}) {
		t.Errorf("List(lex/a/) = %q, want [lex/a/b lex/a/c/d]", got)
	}
	if got := listKeys(t, ctx, s, "lex/a.", ""); !slices.Equal(got, []string{"lex/a.b", "lex/a.d/y", "lex/a.e", "lex/a.obj/x"}) {
		t.Errorf("List(lex/a.) = %q", got)
	}
	all := listKeys(t, ctx, s, "", "")
	if !slices.IsSorted(all) || len(all) != len(keys)+2 {
		t.Errorf("List of everything = %q: want %d keys in order", all, len(keys)+2)
	}
}

// testListPagination writes 2,500 keys in 25 "directories" (more than two
// S3 pages of 1,000) and checks order, startAfter, prefixes and early stop.
func testListPagination(t *testing.T, ctx context.Context, s objstore.Store) {
	const dirs, perDir = 25, 100
	var keys []string
	for d := range dirs {
		for i := range perDir {
			keys = append(keys, fmt.Sprintf("page/%02d/%04d", d, i))
		}
	}
	parallel(t, 16, len(keys), func(i int) error {
		_, err := s.Put(ctx, keys[i], []byte(keys[i]))
		return err
	})

	var got []objstore.Attrs
	err := s.List(ctx, "page/", "", func(a objstore.Attrs) error {
		got = append(got, a)
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != len(keys) {
		t.Fatalf("List returned %d keys, want %d", len(got), len(keys))
	}
	for i, a := range got {
		if a.Key != keys[i] {
			t.Fatalf("List[%d] = %q, want %q", i, a.Key, keys[i])
		}
		if a.Size != int64(len(keys[i])) || a.ETag == "" {
			t.Fatalf("List[%d] = {Size %d, ETag %q}, want Size %d and an ETag", i, a.Size, a.ETag, len(keys[i]))
		}
	}

	check := func(prefix, after string, want []string) {
		t.Helper()
		if got := listKeys(t, ctx, s, prefix, after); !slices.Equal(got, want) {
			t.Errorf("List(%q, after %q): %d keys %s, want %d keys %s", prefix, after, len(got), ends(got), len(want), ends(want))
		}
	}
	filter := func(keep func(string) bool) []string {
		var out []string
		for _, k := range keys {
			if keep(k) {
				out = append(out, k)
			}
		}
		return out
	}
	check("page/", "page/12/0049", keys[12*perDir+50:])
	check("page/", "page/12/0049x", keys[12*perDir+50:]) // not a key itself
	check("page/", "page/12", keys[12*perDir:])          // a "directory"
	check("page/", "page/12/", keys[12*perDir:])
	check("page/", "page/12/9", keys[13*perDir:])
	check("page/", "page/24/0099", nil)
	check("page/", "a", keys)
	check("page/07/", "", keys[7*perDir:8*perDir])
	check("page/07/", "page/07/0089", keys[7*perDir+90:8*perDir])
	check("page/1", "", filter(func(k string) bool { return k >= "page/1" && k < "page/2" }))
	check("page/07/00", "", keys[7*perDir:8*perDir])
	check("page/07/001", "", keys[7*perDir+10:7*perDir+20])
	check("page/99/", "", nil)
	check("pagf", "", nil)

	// ErrStopList ends the listing with a nil error.
	var n int
	err = s.List(ctx, "page/", "page/03/0050", func(a objstore.Attrs) error {
		n++
		if n == 10 {
			return objstore.ErrStopList
		}
		return nil
	})
	if err != nil || n != 10 {
		t.Errorf("List stopped with ErrStopList: err = %v after %d calls, want nil after 10", err, n)
	}
	// Any other callback error is returned as is.
	boom := errors.New("boom")
	n = 0
	err = s.List(ctx, "page/", "", func(objstore.Attrs) error { n++; return boom })
	if !errors.Is(err, boom) || n != 1 {
		t.Errorf("List with a failing callback: err = %v after %d calls, want boom after 1", err, n)
	}
}

func testPutIfAbsentRace(t *testing.T, ctx context.Context, s objstore.Store) {
	const racers = 32
	type result struct {
		etag string
		err  error
	}
	results := make([]result, racers)
	race(racers, func(i int) {
		etag, err := s.PutIfAbsent(ctx, "race/absent", []byte(fmt.Sprintf("racer %02d", i)), map[string]string{"racer": fmt.Sprint(i)})
		results[i] = result{etag, err}
	})
	winner := -1
	for i, r := range results {
		switch {
		case r.err == nil && winner >= 0:
			t.Fatalf("PutIfAbsent: racers %d and %d both won", winner, i)
		case r.err == nil:
			winner = i
		case !errors.Is(r.err, objstore.ErrExists):
			t.Fatalf("PutIfAbsent racer %d: err = %v, want ErrExists", i, r.err)
		}
	}
	if winner < 0 {
		t.Fatal("PutIfAbsent: no racer won")
	}
	o := mustGet(t, ctx, s, "race/absent")
	if want := fmt.Sprintf("racer %02d", winner); string(o.Body) != want || o.ETag != results[winner].etag || o.Meta["racer"] != fmt.Sprint(winner) {
		t.Fatalf("stored %q (ETag %s, meta %v), want the winner's %q (ETag %s)", o.Body, o.ETag, o.Meta, want, results[winner].etag)
	}
}

func testPutIfMatchRace(t *testing.T, ctx context.Context, s objstore.Store) {
	const racers = 32
	base := mustPutIfAbsent(t, ctx, s, "race/cas", []byte("base"), nil)
	type result struct {
		etag string
		err  error
	}
	results := make([]result, racers)
	race(racers, func(i int) {
		etag, err := s.PutIfMatch(ctx, "race/cas", []byte(fmt.Sprintf("racer %02d", i)), base)
		results[i] = result{etag, err}
	})
	winner := -1
	for i, r := range results {
		switch {
		case r.err == nil && winner >= 0:
			t.Fatalf("PutIfMatch: racers %d and %d both won", winner, i)
		case r.err == nil:
			winner = i
		case !errors.Is(r.err, objstore.ErrConflict):
			t.Fatalf("PutIfMatch racer %d: err = %v, want ErrConflict", i, r.err)
		}
	}
	if winner < 0 {
		t.Fatal("PutIfMatch: no racer won")
	}
	o := mustGet(t, ctx, s, "race/cas")
	if want := fmt.Sprintf("racer %02d", winner); string(o.Body) != want || o.ETag != results[winner].etag {
		t.Fatalf("stored %q (ETag %s), want the winner's %q (ETag %s)", o.Body, o.ETag, want, results[winner].etag)
	}
}

func testStaleETag(t *testing.T, ctx context.Context, s objstore.Store) {
	e1 := mustPutIfAbsent(t, ctx, s, "stale/k", []byte("v1"), nil)
	e2, err := s.PutIfMatch(ctx, "stale/k", []byte("v2"), e1)
	if err != nil {
		t.Fatalf("PutIfMatch with the current ETag: %v", err)
	}
	if e2 == e1 {
		t.Fatalf("PutIfMatch of new bytes kept the ETag %s", e1)
	}
	if _, err := s.PutIfMatch(ctx, "stale/k", []byte("v3"), e1); !errors.Is(err, objstore.ErrConflict) {
		t.Fatalf("PutIfMatch with a stale ETag: err = %v, want ErrConflict", err)
	}
	if _, err := s.PutIfMatch(ctx, "stale/k", []byte("v3"), `"not-an-etag"`); !errors.Is(err, objstore.ErrConflict) {
		t.Fatalf("PutIfMatch with a made-up ETag: err = %v, want ErrConflict", err)
	}
	// An unconditional Put also invalidates the ETag it replaced.
	e4 := mustPut(t, ctx, s, "stale/k", []byte("v4"))
	if _, err := s.PutIfMatch(ctx, "stale/k", []byte("v5"), e2); !errors.Is(err, objstore.ErrConflict) {
		t.Fatalf("PutIfMatch with the ETag a Put replaced: err = %v, want ErrConflict", err)
	}
	if o := mustGet(t, ctx, s, "stale/k"); string(o.Body) != "v4" || o.ETag != e4 {
		t.Fatalf("after refused CASes: %q (ETag %s), want v4 (ETag %s)", o.Body, o.ETag, e4)
	}
}

func testPutIfMatchMissing(t *testing.T, ctx context.Context, s objstore.Store) {
	if _, err := s.PutIfMatch(ctx, "cas/missing", []byte("x"), `"0123456789abcdef"`); !errors.Is(err, objstore.ErrConflict) {
		t.Fatalf("PutIfMatch on a key that never existed: err = %v, want ErrConflict", err)
	}
	// The ETag of a deleted object must not revive it.
	e := mustPutIfAbsent(t, ctx, s, "cas/deleted", []byte("x"), nil)
	if err := s.Delete(ctx, "cas/deleted"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.PutIfMatch(ctx, "cas/deleted", []byte("revived"), e); !errors.Is(err, objstore.ErrConflict) {
		t.Fatalf("PutIfMatch with the ETag of a deleted object: err = %v, want ErrConflict", err)
	}
	for _, k := range []string{"cas/missing", "cas/deleted"} {
		if _, err := s.Head(ctx, k); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("Head %s after a refused PutIfMatch: err = %v, want ErrNotFound", k, err)
		}
	}
}

func testMetadata(t *testing.T, ctx context.Context, s objstore.Store) {
	meta := map[string]string{"term": "7", "writer": "node-a", "first-tt": "123456789"}
	e := mustPutIfAbsent(t, ctx, s, "meta/k", []byte("body"), meta)
	if o := mustGet(t, ctx, s, "meta/k"); !maps.Equal(o.Meta, meta) {
		t.Errorf("Get meta = %v, want %v", o.Meta, meta)
	}
	a, err := s.Head(ctx, "meta/k")
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if !maps.Equal(a.Meta, meta) {
		t.Errorf("Head meta = %v, want %v", a.Meta, meta)
	}
	// PutIfMatch replaces the whole object, metadata included.
	if _, err := s.PutIfMatch(ctx, "meta/k", []byte("body 2"), e); err != nil {
		t.Fatalf("PutIfMatch: %v", err)
	}
	if o := mustGet(t, ctx, s, "meta/k"); len(o.Meta) != 0 {
		t.Errorf("meta after PutIfMatch = %v, want none", o.Meta)
	}
	// The store keeps its own copy.
	meta2 := map[string]string{"term": "8"}
	mustPutIfAbsent(t, ctx, s, "meta/copy", nil, meta2)
	meta2["term"] = "9"
	if o := mustGet(t, ctx, s, "meta/copy"); o.Meta["term"] != "8" {
		t.Errorf("meta changed with the caller's map: %v", o.Meta)
	}
}

func testGetRange(t *testing.T, ctx context.Context, s objstore.Store) {
	body := make([]byte, 1000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	mustPut(t, ctx, s, "range/k", body)
	for _, tc := range []struct {
		off, n int64
		want   []byte
	}{
		{0, 1000, body},
		{100, 50, body[100:150]},
		{0, 1, body[:1]},
		{999, 1, body[999:]},
		{900, -1, body[900:]},
		{0, -1, body},
		{990, 50, body[990:]},
		{1000, 10, nil},
		{5000, 10, nil},
		{5000, -1, nil},
		{10, 0, nil},
	} {
		if got := mustRange(t, ctx, s, "range/k", tc.off, tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("GetRange(%d, %d) = %d bytes, want %d", tc.off, tc.n, len(got), len(tc.want))
		}
	}
	if rc, err := s.GetRange(ctx, "range/k", -1, 10); err == nil {
		rc.Close()
		t.Error("GetRange with a negative offset succeeded")
	}
}

func testLargeObject(t *testing.T, ctx context.Context, s objstore.Store) {
	const size = 16 << 20
	body := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < size; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			body[i+j] = byte(v >> (8 * j))
		}
	}
	e := mustPutIfAbsent(t, ctx, s, "large/k", body, nil)
	o := mustGet(t, ctx, s, "large/k")
	if o.Size != size || sha256.Sum256(o.Body) != sha256.Sum256(body) || o.ETag != e {
		t.Fatalf("16 MiB object read back as %d bytes (Size %d), differing from what was written", len(o.Body), o.Size)
	}
	const off = size - 3<<20 + 12345
	if got := mustRange(t, ctx, s, "large/k", off, 1<<20); !bytes.Equal(got, body[off:off+1<<20]) {
		t.Fatalf("GetRange of 1 MiB inside a 16 MiB object: %d bytes, differing", len(got))
	}
}

func testDelete(t *testing.T, ctx context.Context, s objstore.Store) {
	mustPut(t, ctx, s, "del/a/b", []byte("x"))
	mustPut(t, ctx, s, "del/a/c", []byte("y"))
	if err := s.Delete(ctx, "del/a/b"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, "del/a/b"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Head(ctx, "del/a/b"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Head after Delete: err = %v, want ErrNotFound", err)
	}
	if got := listKeys(t, ctx, s, "del/", ""); !slices.Equal(got, []string{"del/a/c"}) {
		t.Fatalf("List after Delete = %q, want [del/a/c]", got)
	}
	if err := s.Delete(ctx, "del/a/b"); err != nil {
		t.Fatalf("Delete of a missing key: %v, want nil", err)
	}
	if err := s.Delete(ctx, "del/never/was"); err != nil {
		t.Fatalf("Delete of a never-written key: %v, want nil", err)
	}
	if err := s.Delete(ctx, "del/a/c"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := listKeys(t, ctx, s, "del/", ""); len(got) != 0 {
		t.Fatalf("List after deleting everything = %q", got)
	}
	// A deleted key can be created again.
	mustPutIfAbsent(t, ctx, s, "del/a/b", []byte("again"), nil)
	if o := mustGet(t, ctx, s, "del/a/b"); string(o.Body) != "again" {
		t.Fatalf("Get after re-creation = %q", o.Body)
	}
}

// testGetIfNoneMatch checks the conditional read: the body comes back
// exactly when the object is not at the ETag the caller holds.
func testGetIfNoneMatch(t *testing.T, ctx context.Context, s objstore.Store) {
	for _, etag := range []string{"", `"0123456789abcdef"`} {
		if _, err := s.GetIfNoneMatch(ctx, "inm/k", etag); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("GetIfNoneMatch(%q) of a missing key: err = %v, want ErrNotFound", etag, err)
		}
	}
	e1 := mustPutIfAbsent(t, ctx, s, "inm/k", []byte("v1"), map[string]string{"term": "7"})
	o, err := s.GetIfNoneMatch(ctx, "inm/k", e1)
	if !errors.Is(err, objstore.ErrNotModified) {
		t.Fatalf("GetIfNoneMatch with the current ETag: err = %v, want ErrNotModified", err)
	}
	if len(o.Body) != 0 {
		t.Fatalf("GetIfNoneMatch with the current ETag returned a body %q", o.Body)
	}
	for _, etag := range []string{"", `"0123456789abcdef"`} {
		o, err := s.GetIfNoneMatch(ctx, "inm/k", etag)
		if err != nil {
			t.Fatalf("GetIfNoneMatch(%q): %v", etag, err)
		}
		if string(o.Body) != "v1" || o.Key != "inm/k" || o.ETag != e1 || o.Size != 2 || o.Meta["term"] != "7" || o.LastModified.IsZero() {
			t.Fatalf("GetIfNoneMatch(%q) = %q {Key %q, ETag %s, Size %d, Meta %v}, want v1 {inm/k, %s, 2, term=7}", etag, o.Body, o.Key, o.ETag, o.Size, o.Meta, e1)
		}
	}
	// A write moves the ETag: the old one reads the new version, the new
	// one reads nothing.
	e2, err := s.PutIfMatch(ctx, "inm/k", []byte("v2, longer"), e1)
	if err != nil {
		t.Fatalf("PutIfMatch: %v", err)
	}
	if o, err := s.GetIfNoneMatch(ctx, "inm/k", e1); err != nil || string(o.Body) != "v2, longer" || o.ETag != e2 {
		t.Fatalf("GetIfNoneMatch with the replaced ETag = %q (ETag %s, err %v), want the new version (ETag %s)", o.Body, o.ETag, err, e2)
	}
	if _, err := s.GetIfNoneMatch(ctx, "inm/k", e2); !errors.Is(err, objstore.ErrNotModified) {
		t.Fatalf("GetIfNoneMatch with the new ETag: err = %v, want ErrNotModified", err)
	}
	// A deleted object is not found, whatever ETag it had.
	if err := s.Delete(ctx, "inm/k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.GetIfNoneMatch(ctx, "inm/k", e2); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("GetIfNoneMatch with the ETag of a deleted object: err = %v, want ErrNotFound", err)
	}
}

func testInvalidKeys(t *testing.T, ctx context.Context, s objstore.Store) {
	for _, key := range []string{"", "/abs", "a/../b", "a\x00b", "a//b", "./a", "a/", "..", "a\\b"} {
		errs := map[string]error{}
		_, errs["Get"] = s.Get(ctx, key)
		_, errs["GetIfNoneMatch"] = s.GetIfNoneMatch(ctx, key, `"e"`)
		_, errs["Head"] = s.Head(ctx, key)
		_, errs["PutIfAbsent"] = s.PutIfAbsent(ctx, key, []byte("x"), nil)
		_, errs["PutIfMatch"] = s.PutIfMatch(ctx, key, []byte("x"), `"e"`)
		_, errs["Put"] = s.Put(ctx, key, []byte("x"))
		errs["Delete"] = s.Delete(ctx, key)
		rc, err := s.GetRange(ctx, key, 0, 1)
		if rc != nil {
			rc.Close()
		}
		errs["GetRange"] = err
		for op, err := range errs {
			if !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("%s(%q): err = %v, want ErrInvalidKey", op, key, err)
			}
		}
	}
	for _, prefix := range []string{"/abs", "a/../", "a\x00"} {
		if err := s.List(ctx, prefix, "", func(objstore.Attrs) error { return nil }); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("List(%q): err = %v, want ErrInvalidKey", prefix, err)
		}
	}
	if keys := listKeys(t, ctx, s, "", ""); len(keys) != 0 {
		t.Errorf("invalid keys left objects behind: %q", keys)
	}
}

func testCanceledContext(t *testing.T, ctx context.Context, s objstore.Store) {
	mustPut(t, ctx, s, "ctx/k", []byte("x"))
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(canceled, "ctx/k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a canceled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.GetIfNoneMatch(canceled, "ctx/k", `"e"`); !errors.Is(err, context.Canceled) {
		t.Errorf("GetIfNoneMatch with a canceled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.PutIfAbsent(canceled, "ctx/new", []byte("x"), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("PutIfAbsent with a canceled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.Head(ctx, "ctx/new"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("a canceled PutIfAbsent created its key: Head err = %v", err)
	}
}

func testProbe(t *testing.T, ctx context.Context, s objstore.Store) {
	if err := objstore.Probe(ctx, s, "probe/"); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if keys := listKeys(t, ctx, s, "", ""); len(keys) != 0 {
		t.Errorf("Probe left scratch keys behind: %q", keys)
	}
}

// race runs fn(0..n-1) on n goroutines released together.
func race(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// parallel runs fn(0..n-1) on at most workers goroutines and fails the test
// on the first error.
func parallel(t *testing.T, workers, n int, fn func(i int) error) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d writes failed; first: %v", len(errs), n, errs[0])
	}
}

func listKeys(t *testing.T, ctx context.Context, s objstore.Store, prefix, startAfter string) []string {
	t.Helper()
	var keys []string
	if err := s.List(ctx, prefix, startAfter, func(a objstore.Attrs) error {
		keys = append(keys, a.Key)
		return nil
	}); err != nil {
		t.Fatalf("List(%q, %q): %v", prefix, startAfter, err)
	}
	return keys
}

func mustGet(t *testing.T, ctx context.Context, s objstore.Store, key string) objstore.Object {
	t.Helper()
	o, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	return o
}

func mustPut(t *testing.T, ctx context.Context, s objstore.Store, key string, body []byte) string {
	t.Helper()
	etag, err := s.Put(ctx, key, body)
	if err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
	return etag
}

func mustPutIfAbsent(t *testing.T, ctx context.Context, s objstore.Store, key string, body []byte, meta map[string]string) string {
	t.Helper()
	etag, err := s.PutIfAbsent(ctx, key, body, meta)
	if err != nil {
		t.Fatalf("PutIfAbsent %s: %v", key, err)
	}
	return etag
}

func mustRange(t *testing.T, ctx context.Context, s objstore.Store, key string, off, n int64) []byte {
	t.Helper()
	rc, err := s.GetRange(ctx, key, off, n)
	if err != nil {
		t.Fatalf("GetRange(%s, %d, %d): %v", key, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("GetRange(%s, %d, %d): read: %v", key, off, n, err)
	}
	return b
}

// ends abbreviates a long key list for error messages.
func ends(keys []string) string {
	if len(keys) <= 4 {
		return fmt.Sprintf("%q", keys)
	}
	return fmt.Sprintf("[%q %q … %q %q]", keys[0], keys[1], keys[len(keys)-2], keys[len(keys)-1])
}
