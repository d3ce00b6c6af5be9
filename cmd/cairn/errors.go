package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

// Exit statuses of cairn (root --help lists them).
const (
	exitOK          = 0
	exitFailed      = 1 // anything below: a conflict, a fenced or truncated read, a failed check
	exitUsage       = 2 // bad flags or arguments, or a request the server refused as invalid (400)
	exitNotFound    = 3 // no such pchannel, vchannel, snapshot, restore job or broadcast (404)
	exitUnavailable = 4 // the server cannot be reached, is busy, or an append's outcome is unknown
	exitInternal    = 5 // the server failed (500)
)

// msgForbidden explains a Function URL's bare 403: it names no reason.
const msgForbidden = "forbidden (403): the function URL refused the request: the AWS credentials are not accepted, the signature's region is not the function's, or the caller lacks lambda:InvokeFunctionUrl (check the credentials, --profile and --region)"

// errUsage marks an error in how cairn was called.
var errUsage = errors.New("usage")

// usageError wraps err as a usage error.
type usageError struct{ err error }

func (e usageError) Error() string   { return e.err.Error() }
func (e usageError) Unwrap() []error { return []error{e.err, errUsage} }

// errorOut is an error as cairn prints it with --output json: the
// server's code, message and ref when the server answered, else a code of
// cairn's own (usage, unreachable, error).
type errorOut struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"status,omitempty"` // the HTTP status of the server's answer
	Ref     string `json:"ref,omitempty"`    // the server logged the cause under it
	// Earliest is the earliest readable position of a truncated read:
	// where --from can go on.
	Earliest string `json:"earliest,omitempty"`
	Exit     int    `json:"exit"`
}

// explain turns err into one sentence, a code and an exit status.
func explain(err error) errorOut {
	var ae *client.Error
	var ne net.Error
	var oe *net.OpError
	e := errorOut{Code: "error", Message: err.Error(), Exit: exitFailed}
	switch {
	case errors.As(err, &ae):
		// The server's message, not the SDK's request line and wrapping;
		// what cairn adds (a line number) stays.
		e.Code, e.Message, e.Status, e.Ref = ae.Code, ae.Message, ae.Status, ae.Ref
		if ae.Earliest != "" {
			e.Earliest = ae.Earliest
			e.Message += "; read on with --from " + ae.Earliest
		}
		if ae.Status == http.StatusForbidden && ae.Code == "http_403" {
			// A Function URL with AWS_IAM answers {"Message":"Forbidden"}.
			e.Message = msgForbidden
		}
		var le lineError
		if errors.As(err, &le) {
			e.Message = le.prefix() + e.Message
		}
	case errors.Is(err, errUsage):
		e.Code = "usage"
	case errors.As(err, &oe) && oe.Op == "dial":
		e.Code, e.Message = "unreachable", fmt.Sprintf("cannot reach the server at %v: %v", oe.Addr, oe.Err)
	case errors.As(err, &ne):
		e.Code = "unreachable"
	}
	switch {
	case errors.Is(err, errUsage), errors.Is(err, client.ErrInvalid):
		e.Exit = exitUsage
	case errors.Is(err, client.ErrNotFound):
		e.Exit = exitNotFound
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrOutcomeUnknown), e.Code == "unreachable":
		e.Exit = exitUnavailable
	case errors.Is(err, client.ErrInternal):
		e.Exit = exitInternal
	}
	e.Message = strings.TrimSpace(e.Message)
	return e
}

// report prints err for the user on w (as JSON when the command ran with
// --output json) and returns the exit status.
func report(w io.Writer, cmd *cobra.Command, err error) int {
	if err == nil {
		return exitOK
	}
	e := explain(err)
	if cmd == nil {
		fmt.Fprintln(w, "cairn:", e.Message)
		return e.Exit
	}
	if f := cmd.Flags().Lookup("output"); f != nil && f.Value.String() == "json" {
		_ = json.NewEncoder(w).Encode(e)
		return e.Exit
	}
	msg := e.Message
	if e.Ref != "" && !strings.Contains(msg, e.Ref) {
		msg += " (ref " + e.Ref + ")"
	}
	fmt.Fprintln(w, "cairn:", msg)
	if e.Exit == exitUsage && errors.Is(err, errUsage) {
		fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return e.Exit
}

// markUsage makes the errors cobra finds before a command runs (unknown
// flags, wrong arguments) usage errors, for report's exit status.
func markUsage(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return usageError{err}
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// usagef is a usage error of cairn's own (a flag value out of range).
func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// lineError is the failure of produce's input line.
type lineError struct {
	line int
	err  error
}

func (e lineError) prefix() string { return fmt.Sprintf("line %d: ", e.line) }
func (e lineError) Error() string  { return e.prefix() + e.err.Error() }
func (e lineError) Unwrap() error  { return e.err }
