// Command cairn runs and operates Cairn: `cairn serve` starts every function
// in one local process; later subcommands produce, consume and administer.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		os.Exit(1)
	}
}
