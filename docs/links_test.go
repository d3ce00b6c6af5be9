package docs_test

import (
	"bufio"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// The documentation lives in the repository and points only into it:
// every relative link of README.md, RELIABILITY.md and docs/*.md must name
// a file that exists, and a #fragment a heading (GitHub's anchors) of the
// Markdown file it names; nothing may point at the shared directory beside
// the repository where the design started, or at its two files (stale).

// repoRoot is the repository, seen from this package's directory.
const repoRoot = ".."

// docFiles returns the Markdown files whose links are checked, relative to
// the repository root.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "RELIABILITY.md"}
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) == 0 {
		t.Fatal("no docs/*.md found")
	}
	for _, d := range docs {
		rel, err := filepath.Rel(repoRoot, d)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, filepath.ToSlash(rel))
	}
	return files
}

// link is one link destination found in a Markdown file.
type link struct {
	line int
	dest string
}

var (
	fenceRE    = regexp.MustCompile("^ {0,3}(```+|~~~+)")
	codeSpanRE = regexp.MustCompile("`+[^`]*`+")
	// inlineLinkRE finds [text](dest) and ![alt](dest), with an optional
	// title; dest may be in angle brackets.
	inlineLinkRE = regexp.MustCompile(`!?\[[^\]]*\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+"[^"]*")?\s*\)`)
	refDefRE     = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
	atxRE        = regexp.MustCompile(`^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$`)
	setextRE     = regexp.MustCompile(`^ {0,3}(=+|-+)\s*$`)
	htmlAnchorRE = regexp.MustCompile(`<a\s+[^>]*(?:name|id)="([^"]+)"`)
	schemeRE     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
)

// parse returns the links of a Markdown text and the anchors of its
// headings. Fenced code blocks and code spans hold neither.
func parse(text string) (links []link, anchors map[string]bool) {
	anchors = map[string]bool{}
	seen := map[string]int{}
	addHeading := func(h string) {
		slug := slugify(h)
		if n := seen[slug]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	var fence string
	prev := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			switch {
			case fence == "":
				fence = m[1][:3]
			case strings.HasPrefix(m[1], fence):
				fence = ""
			}
			prev = ""
			continue
		}
		if fence != "" {
			continue
		}
		if m := atxRE.FindStringSubmatch(line); m != nil {
			addHeading(m[2])
		} else if setextRE.MatchString(line) && strings.TrimSpace(prev) != "" && !strings.Contains(prev, "|") {
			addHeading(strings.TrimSpace(prev))
		}
		for _, m := range htmlAnchorRE.FindAllStringSubmatch(line, -1) {
			anchors[m[1]] = true
		}
		bare := codeSpanRE.ReplaceAllString(line, "")
		for _, m := range inlineLinkRE.FindAllStringSubmatch(bare, -1) {
			links = append(links, link{n, strings.Trim(m[1], "<>")})
		}
		if m := refDefRE.FindStringSubmatch(bare); m != nil {
			links = append(links, link{n, strings.Trim(m[1], "<>")})
		}
		prev = line
	}
	return links, anchors
}

var (
	headingLinkRE = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTagRE     = regexp.MustCompile(`<[^>]+>`)
)

// slugify is GitHub's heading anchor (github-slugger): the heading's text
// (code marks, emphasis marks, link targets and HTML tags gone), lower
// case, every character but letters, marks, digits, '_', '-' and spaces
// removed, and each space turned into '-'. Repeats get -1, -2, ... (parse).
func slugify(heading string) string {
	text := headingLinkRE.ReplaceAllString(heading, "$1")
	text = htmlTagRE.ReplaceAllString(text, "")
	text = strings.NewReplacer("`", "", "*", "").Replace(text)
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// checkLink reports what is wrong with dest, a link of the Markdown file
// from (relative to the repository root), or "" if it resolves.
// anchorsOf returns the heading anchors of a Markdown file of the
// repository.
func checkLink(from, dest string, anchorsOf func(file string) (map[string]bool, error)) string {
	if strings.Contains(dest, "shared/") || strings.HasPrefix(dest, "//") {
		return "points outside the repository"
	}
	if schemeRE.MatchString(dest) {
		return "" // http:, https:, mailto: ... are not checked
	}
	target, frag, _ := strings.Cut(dest, "#")
	target, err := url.PathUnescape(target)
	if err != nil {
		return fmt.Sprintf("bad escape: %v", err)
	}
	file := from
	if target != "" {
		if strings.HasPrefix(target, "/") {
			file = path.Clean(strings.TrimPrefix(target, "/"))
		} else {
			file = path.Join(path.Dir(from), target)
		}
		if file == ".." || strings.HasPrefix(file, "../") {
			return "points outside the repository"
		}
		if _, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(file))); err != nil {
			return fmt.Sprintf("%s does not exist", file)
		}
	}
	if frag == "" || !strings.HasSuffix(file, ".md") {
		return ""
	}
	anchors, err := anchorsOf(file)
	if err != nil {
		return err.Error()
	}
	if !anchors[frag] {
		return fmt.Sprintf("%s has no heading with the anchor #%s", file, frag)
	}
	return ""
}

// TestDocLinks checks every link of the documentation.
func TestDocLinks(t *testing.T) {
	cache := map[string]map[string]bool{}
	anchorsOf := func(file string) (map[string]bool, error) {
		if a, ok := cache[file]; ok {
			return a, nil
		}
		b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(file)))
		if err != nil {
			return nil, err
		}
		_, a := parse(string(b))
		cache[file] = a
		return a, nil
	}
	checked := 0
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		links, _ := parse(string(b))
		for _, l := range links {
			checked++
			if why := checkLink(f, l.dest, anchorsOf); why != "" {
				t.Errorf("%s:%d: link %q: %s", f, l.line, l.dest, why)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("found only %d links; the parser is broken", checked)
	}
}

// stale are the references that point outside the repository: the
// directory the design started in, and its two files (spelled in parts so
// that this file does not match itself).
var stale = []string{"../" + "shared", "PROTOCOL" + ".md", "DESIGN" + ".md"}

// docRefRE finds a path into docs/ named in code or configuration.
var docRefRE = regexp.MustCompile(`\bdocs/[A-Za-z0-9_.-]+\.md\b`)

// TestNoReferenceOutsideRepository scans the repository's source,
// configuration and documentation for the stale references, and checks
// that every docs/*.md they name exists.
func TestNoReferenceOutsideRepository(t *testing.T) {
	scanned := 0
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != repoRoot && (strings.HasPrefix(name, ".") || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		switch path.Ext(name) {
		case ".go", ".md", ".yaml", ".yml", ".txt", ".golden", ".json":
		default:
			if name != "Makefile" {
				return nil
			}
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		scanned++
		rel, _ := filepath.Rel(repoRoot, p)
		for n, line := range strings.Split(string(b), "\n") {
			for _, s := range stale {
				if strings.Contains(line, s) {
					t.Errorf("%s:%d: refers to %s, outside the repository: point into docs/ instead", rel, n+1, s)
				}
			}
			for _, ref := range docRefRE.FindAllString(line, -1) {
				if _, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(ref))); err != nil {
					t.Errorf("%s:%d: names %s, which does not exist", rel, n+1, ref)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 50 {
		t.Fatalf("scanned only %d files; the walk is broken", scanned)
	}
}

// TestSlugify pins GitHub's anchor rules on the headings this repository
// uses.
func TestSlugify(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{"Flush, truncation, GC", "flush-truncation-gc"},
		{"`cairn serve`", "cairn-serve"},
		{"Lease record (`coordinator/lease.go`: `Lease`)", "lease-record-coordinatorleasego-lease"},
		{"What limits the targets on a small machine", "what-limits-the-targets-on-a-small-machine"},
		{"Changes from the original protocol", "changes-from-the-original-protocol"},
		{"I1–I11 and *more*", "i1i11-and-more"},
		{"[Linked](x.md) heading", "linked-heading"},
		{"snake_case and  two spaces", "snake_case-and--two-spaces"},
	} {
		if got := slugify(tc.heading); got != tc.want {
			t.Errorf("slugify(%q) = %q, want %q", tc.heading, got, tc.want)
		}
	}
	_, anchors := parse("# A\n## A\nB\n---\n```\n# not a heading\n```\n")
	for _, want := range []string{"a", "a-1", "b"} {
		if !anchors[want] {
			t.Errorf("anchors %v lack %q", anchors, want)
		}
	}
	if anchors["not-a-heading"] {
		t.Error("a heading inside a code fence got an anchor")
	}
}
