package lambdaemutest

import (
	"context"
	"os"
	"path"
	"sync"
	"testing"

	"github.com/cairnlog/cairn/infra/lambdaemu"
)

// Bootstraps is a set of function packages built on first use. Make it
// with NewBootstraps.
type Bootstraps struct {
	dir  string   // the go command's working directory
	pkgs []string // import paths, or paths relative to dir

	once sync.Once
	out  string            // where the binaries are; "" until built
	bins map[string]string // a package's last path element → its binary
	err  error
}

// NewBootstraps returns the bootstraps of pkgs (import paths, or paths
// relative to dir, the go command's working directory), not yet built.
func NewBootstraps(dir string, pkgs ...string) *Bootstraps {
	return &Bootstraps{dir: dir, pkgs: pkgs}
}

// Path returns the bootstrap of the package whose last path element is
// name ("node" for github.com/cairnlog/cairn/functions/node), building
// every package of b at the first call. A build error, or a name b does not
// build, fails tb.
func (b *Bootstraps) Path(tb testing.TB, name string) string {
	tb.Helper()
	b.once.Do(b.build)
	if b.err != nil {
		tb.Fatalf("build the bootstraps: %v", b.err)
	}
	bin, ok := b.bins[name]
	if !ok {
		tb.Fatalf("no bootstrap %q among %v", name, b.pkgs)
	}
	return bin
}

// build compiles every package once, with no test's context: the binaries
// outlive the test that first asks for one.
func (b *Bootstraps) build() {
	if b.out, b.err = os.MkdirTemp("", "cairn-bootstraps-"); b.err != nil {
		return
	}
	paths, err := lambdaemu.Build(context.Background(), b.dir, b.out, b.pkgs...)
	if err != nil {
		b.err = err
		_ = os.RemoveAll(b.out) // nothing to keep: Remove has nothing to do
		b.out = ""
		return
	}
	b.bins = map[string]string{}
	for i, p := range b.pkgs {
		b.bins[path.Base(p)] = paths[i]
	}
}

// Remove deletes the built binaries, if any; TestMain calls it once the
// tests have run.
func (b *Bootstraps) Remove() error {
	b.once.Do(func() {}) // nothing built after this
	if b.out == "" {
		return nil
	}
	return os.RemoveAll(b.out)
}

// Start starts a function with cfg (lambdaemu.Start). The test's cleanup
// closes it, and, if the test failed, logs the output of every environment
// it ran.
func Start(tb testing.TB, cfg lambdaemu.Config) *lambdaemu.Function {
	tb.Helper()
	f, err := lambdaemu.Start(cfg)
	if err != nil {
		tb.Fatalf("start function %q: %v", cfg.Name, err)
	}
	tb.Cleanup(func() {
		envs := f.Envs()
		if err := f.Close(); err != nil {
			tb.Error(err)
		}
		if tb.Failed() {
			for _, e := range envs {
				tb.Logf("--- %v log ---\n%s", e, e.Log())
			}
		}
	})
	return f
}
