package lambdaemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
)

// Build compiles each package as Lambda's provided.al2023 runtime runs it
// (linux, static, -tags lambda.norpc, -trimpath), for this machine's
// architecture so that it runs here, into outDir. Packages are import paths
// or paths relative to dir, the go command's working directory. It
// returns each package's binary path, by package, in order.
func Build(ctx context.Context, dir, outDir string, pkgs ...string) ([]string, error) {
	args := []string{"build", "-tags", "lambda.norpc", "-trimpath", "-o", outDir + string(filepath.Separator)}
	cmd := exec.CommandContext(ctx, "go", append(args, pkgs...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("lambdaemu: go %s: %w\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
	bins := make([]string, len(pkgs))
	for i, p := range pkgs {
		bins[i] = filepath.Join(outDir, path.Base(p))
	}
	return bins, nil
}
