package objstore_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/objstoretest"
	"github.com/cairnlog/cairn/infra/testkit"
)

func newFS(t *testing.T, root string) *objstore.FS {
	t.Helper()
	s, err := objstore.NewFS(root)
	if err != nil {
		t.Fatalf("NewFS: %v", err)
	}
	return s
}

func TestFSAcceptance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store { return newFS(t, t.TempDir()) })
}

func TestFSLayout(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s := newFS(t, root)
	for _, k := range []string{"a/b", "a/b/c", "x.obj/y", "x"} {
		if _, err := s.Put(ctx, k, []byte(k)); err != nil {
			t.Fatalf("Put %s: %v", k, err)
		}
	}
	for _, p := range []string{"a.d/b.obj", "a.d/b.d/c.obj", "x.obj.d/y.obj", "x.obj"} {
		if st, err := os.Stat(filepath.Join(root, p)); err != nil || !st.Mode().IsRegular() {
			t.Errorf("object file %s: %v", p, err)
		}
	}
	// Leftovers of a crash and foreign files are invisible.
	for _, p := range []string{"a.d/.123.tmp", "a.d/notes.txt"} {
		if err := os.WriteFile(filepath.Join(root, p), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	if err := s.List(ctx, "", "", func(a objstore.Attrs) error { keys = append(keys, a.Key); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if want := []string{"a/b", "a/b/c", "x", "x.obj/y"}; fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("List = %q, want %q", keys, want)
	}
	// Delete prunes the directories it empties, never the root.
	for _, k := range []string{"a/b/c", "a/b", "x.obj/y", "x"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Fatalf("Delete %s: %v", k, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "a.d/b.d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a.d/b.d not pruned: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "x.obj.d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("x.obj.d not pruned: %v", err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("root removed: %v", err)
	}
}

func TestFSReopen(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	etag, err := newFS(t, root).PutIfAbsent(ctx, "k", []byte("durable"), map[string]string{"term": "3"})
	if err != nil {
		t.Fatal(err)
	}
	o, err := newFS(t, root).Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if string(o.Body) != "durable" || o.ETag != etag || o.Meta["term"] != "3" {
		t.Fatalf("reopened store read %q (ETag %s, meta %v)", o.Body, o.ETag, o.Meta)
	}
}

func TestFSKeyElementTooLong(t *testing.T) {
	s := newFS(t, t.TempDir())
	long := strings.Repeat("x", 242)
	if _, err := s.Put(t.Context(), "a/"+long, nil); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Fatalf("Put of a %d-byte element: err = %v, want ErrInvalidKey", len(long), err)
	}
	if _, err := s.Put(t.Context(), "a/"+long[:241], nil); err != nil {
		t.Fatalf("Put of a 241-byte element: %v", err)
	}
}

// TestFSPlainObjectFiles: an object file holds the object's bytes and
// nothing else, so other tools read it in place; its sidecar sits beside it.
func TestFSPlainObjectFiles(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s := newFS(t, root)
	body := []byte("ARROW1\x00\x00 some segment bytes")
	if _, err := s.PutIfAbsent(ctx, "segments/v1/0-9-f.arrow", body, map[string]string{"crc32c": "7"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "segments.d", "v1.d", "0-9-f.arrow.obj"))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("object file holds %q (%v), want exactly the object's bytes %q", got, err, body)
	}
	if _, err := os.Stat(filepath.Join(root, "segments.d", "v1.d", "0-9-f.arrow.obj.meta")); err != nil {
		t.Fatalf("no sidecar: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, ".cairn-format")); err != nil || string(b) != "2\n" {
		t.Fatalf(".cairn-format = %q, %v; want \"2\\n\"", b, err)
	}
}

// TestFSCorruption damages object files and sidecars and expects errors
// wrapping ErrCorrupt, never panics or silently wrong bytes.
func TestFSCorruption(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s := newFS(t, root)
	for _, tc := range []struct {
		name    string
		sidecar bool // damage the sidecar, not the object file
		damage  func(b []byte) []byte
	}{
		{"body bit flip", false, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"truncated body", false, func(b []byte) []byte { return b[:len(b)-1] }},
		{"empty body", false, func([]byte) []byte { return nil }},
		{"sidecar header bit flip", true, func(b []byte) []byte { b[20] ^= 1; return b }},
		{"sidecar bad magic", true, func(b []byte) []byte { b[0] = 'X'; return b }},
		{"sidecar future version", true, func(b []byte) []byte { b[9] = 2; return b }},
		{"sidecar huge header length", true, func(b []byte) []byte { b[10] = 0xff; return b }},
		{"sidecar truncated", true, func(b []byte) []byte { return b[:len(b)-1] }},
		{"sidecar empty", true, func([]byte) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "corrupt/" + strings.ReplaceAll(tc.name, " ", "-")
			if _, err := s.Put(ctx, key, []byte("some body bytes")); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(root, "corrupt.d", filepath.Base(key)+".obj")
			if tc.sidecar {
				path += ".meta"
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			if o, err := s.Get(ctx, key); !errors.Is(err, objstore.ErrCorrupt) {
				t.Fatalf("Get of a damaged object: %q, %v; want ErrCorrupt", o.Body, err)
			}
		})
	}
	// A sidecar gone: the object file alone is not an object Cairn wrote.
	if _, err := s.Put(ctx, "corrupt/lost", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "corrupt.d", "lost.obj.meta")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(ctx, "corrupt/lost"); !errors.Is(err, objstore.ErrCorrupt) {
		t.Fatalf("Head without a sidecar: %v, want ErrCorrupt", err)
	}
}

// The cross-process test re-executes this test binary as fsChildren
// processes that race PutIfAbsent and PutIfMatch on shared keys in one root.
const (
	fsChildEnv   = "CAIRN_FS_CHILD"
	fsChildren   = 6
	fsChildKeys  = 20
	fsChildStart = "start"
)

func TestFSCrossProcess(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s := newFS(t, root)
	etags := make([]string, fsChildKeys)
	for i := range etags {
		e, err := s.PutIfAbsent(ctx, fmt.Sprintf("cas/%02d", i), []byte("base"), nil)
		if err != nil {
			t.Fatal(err)
		}
		etags[i] = e
	}
	barrier := t.TempDir()
	outs := make([]bytes.Buffer, fsChildren)
	cmds := make([]*exec.Cmd, fsChildren)
	for c := range fsChildren {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFSCrossProcessChild$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			fsChildEnv+"="+strconv.Itoa(c),
			"CAIRN_FS_ROOT="+root,
			"CAIRN_FS_BARRIER="+barrier,
			"CAIRN_FS_ETAGS="+strings.Join(etags, ","))
		cmd.Stdout, cmd.Stderr = &outs[c], &outs[c]
		if err := cmd.Start(); err != nil {
			t.Fatalf("start child %d: %v", c, err)
		}
		cmds[c] = cmd
	}
	// Release the children together once all of them are ready, so that
	// their writes overlap instead of running one process after another.
	testkit.EventuallyNil(t, 2*time.Minute, "every child ready", func() error {
		if ready, _ := filepath.Glob(filepath.Join(barrier, "ready-*")); len(ready) < fsChildren {
			return fmt.Errorf("%d of %d ready", len(ready), fsChildren)
		}
		return nil
	})
	if err := os.WriteFile(filepath.Join(barrier, fsChildStart), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, fsChildren)
	for c, cmd := range cmds {
		wg.Add(1)
		go func() { defer wg.Done(); errs[c] = cmd.Wait() }()
	}
	wg.Wait()

	// Each child prints "absent|cas <i> won|lost"; one winner per key.
	winners := map[string][]int{}
	for c := range fsChildren {
		if errs[c] != nil {
			t.Fatalf("child %d: %v\n%s", c, errs[c], outs[c].String())
		}
		sc := bufio.NewScanner(&outs[c])
		lines := 0
		for sc.Scan() {
			var kind, outcome string
			var i int
			if n, _ := fmt.Sscanf(sc.Text(), "%s %d %s", &kind, &i, &outcome); n != 3 || (kind != "absent" && kind != "cas") {
				continue
			}
			lines++
			if outcome == "won" {
				key := fmt.Sprintf("%s/%02d", kind, i)
				winners[key] = append(winners[key], c)
			}
		}
		if lines != 2*fsChildKeys {
			t.Fatalf("child %d reported %d outcomes, want %d:\n%s", c, lines, 2*fsChildKeys, outs[c].String())
		}
	}
	for _, kind := range []string{"absent", "cas"} {
		for i := range fsChildKeys {
			key := fmt.Sprintf("%s/%02d", kind, i)
			w := winners[key]
			if len(w) != 1 {
				t.Fatalf("%s: winners %v, want exactly one", key, w)
			}
			o, err := s.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("child %d", w[0]); string(o.Body) != want {
				t.Fatalf("%s holds %q, want the winner's %q", key, o.Body, want)
			}
		}
	}
}

// TestFSCrossProcessChild is one racer of TestFSCrossProcess; run directly,
// it does nothing.
func TestFSCrossProcessChild(t *testing.T) {
	id := os.Getenv(fsChildEnv)
	if id == "" {
		return
	}
	ctx := t.Context()
	s := newFS(t, os.Getenv("CAIRN_FS_ROOT"))
	etags := strings.Split(os.Getenv("CAIRN_FS_ETAGS"), ",")
	barrier := os.Getenv("CAIRN_FS_BARRIER")
	if err := os.WriteFile(filepath.Join(barrier, "ready-"+id), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 2*time.Minute, "the parent releases the children", func() bool {
		_, err := os.Stat(filepath.Join(barrier, fsChildStart))
		return err == nil
	})
	body := []byte("child " + id)
	outcome := func(err error, lose error) string {
		switch {
		case err == nil:
			return "won"
		case errors.Is(err, lose):
			return "lost"
		}
		t.Fatalf("unexpected error: %v", err)
		return ""
	}
	for i := range fsChildKeys {
		_, err := s.PutIfAbsent(ctx, fmt.Sprintf("absent/%02d", i), body, nil)
		fmt.Printf("absent %d %s\n", i, outcome(err, objstore.ErrExists))
		_, err = s.PutIfMatch(ctx, fmt.Sprintf("cas/%02d", i), body, etags[i])
		fmt.Printf("cas %d %s\n", i, outcome(err, objstore.ErrConflict))
	}
}
