package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

// defaultServer is where the client commands look for cairn serve.
const defaultServer = "http://127.0.0.1:7070"

// connFlags are the flags every client command takes (not serve, which has
// its own --token: the one it requires).
type connFlags struct {
	server string
	token  string
}

// addConnFlags adds --server and --token to cmd and its subcommands.
func addConnFlags(cmd *cobra.Command, c *connFlags) {
	f := cmd.PersistentFlags()
	f.StringVar(&c.server, "server", defaultServer, "URL of the Cairn server; $CAIRN_SERVER, if set, replaces the default")
	f.StringVar(&c.token, "token", "", "bearer token to send, as cairn serve --token requires; default $CAIRN_TOKEN")
}

// client builds the SDK client the flags (or, for flags not given, the
// environment or the config file) name.
func (c *connFlags) client(cmd *cobra.Command) (*client.Client, error) {
	token := c.token
	if v := os.Getenv("CAIRN_TOKEN"); v != "" && !cmd.Flags().Changed("token") {
		token = v
	}
	return connect(cmd, c.server, token) // stack.go: --server, --stack, $CAIRN_SERVER, config
}

// outputFlag is --output: text (tables and lines) or json.
type outputFlag struct{ format string }

func addOutputFlag(cmd *cobra.Command, o *outputFlag, jsonWhat string) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "text", "output format: text, or json ("+jsonWhat+")")
}

func (o *outputFlag) validate() error {
	if o.format != "text" && o.format != "json" {
		return usagef("--output %q: want text or json", o.format)
	}
	return nil
}

func (o *outputFlag) json() bool { return o.format == "json" }

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// table writes rows under a header, aligned by tabwriter.
func table(w io.Writer, header string, rows [][]any) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		for i, v := range r {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, v)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
