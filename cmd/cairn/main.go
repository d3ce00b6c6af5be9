// Command cairn runs and operates Cairn: `cairn serve` starts every function
// in one local process; later subcommands produce, consume and administer.
package main

import (
	"context"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs cairn with args and returns its exit status; an error is
// printed on stderr as one sentence (JSON with --output json).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	markUsage(root)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && cmd == root && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		err = usageError{err} // an unknown command
	}
	return report(stderr, cmd, err)
}
