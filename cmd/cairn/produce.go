package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/functions/system"
)

type produceOptions struct {
	conn      connFlags
	out       outputFlag
	pchannel  string
	vchannel  string
	typ       string
	keyPrefix string
	file      string
	window    int
}

func newProduceCmd() *cobra.Command {
	var o produceOptions
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Append lines of stdin or a file to a vchannel, one message per line",
		Long: `produce appends every line of standard input (or of --file) as one message
of --vchannel, whose payload is the line without its line ending. With
--vchannel alone the vchannel must exist (cairn vchannel create) and the
server appends to its pchannel; with --pchannel too, the messages go to that
pchannel, tagged with --vchannel, whether or not the registry knows it (one
of the server's configured pchannels, created by its first append). Messages
are batched and sent with the Go SDK's producer: each carries an idempotency
key (--key-prefix, an epoch new on every run, and the line's sequence
number), so a request retried after a timeout or lost reply lands once.

It prints one ack per line, in input order, as it arrives: the message's
position (usable as consume --from) and timetick; a message the server had
acked before under the same key is marked duplicate. With --output json each
ack is a JSON object on its own line. A summary goes to standard error.

The messages land in input order at any --window: a request sent while the
one before it is unresolved is written by the server only behind it. A
larger window keeps several requests in flight, which pays where a
request's round trip or the server's work per request, not the store,
bounds the rate. make bench measures both (producer_window1_msgs_per_s,
producer_window4_msgs_per_s): against a local cairn serve on a quiet 2-core
machine --window 4 made 1.8 times the messages a second of --window 1 (0.72
to 0.94 times on a loaded machine, before the HTTP path lost a copy of
every body).

A line may be up to 1 MiB (the server's batch limit, less 32 bytes and the
vchannel's and producer's names). It stops at the first line refused (too
large here, or refused for good by the server), naming its line number;
lines after it are not sent, and the summary counts the lines read. Ctrl-C stops reading and
waits up to 10 s for the acks of the lines already sent.`,
		Example: `  printf 'hello\nworld\n' | cairn produce --pchannel p0 --vchannel v0
  cairn produce --vchannel orders --file events.txt --window 4 --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return produce(ctx, cmd, o)
		},
	}
	addConnFlags(cmd, &o.conn)
	addOutputFlag(cmd, &o.out, "one ack object per line")
	f := cmd.Flags()
	f.StringVar(&o.pchannel, "pchannel", "", "pchannel to append to (one of the server's configured set); default: the vchannel's")
	f.StringVar(&o.vchannel, "vchannel", "", "vchannel of every message (required; without --pchannel, an existing vchannel)")
	f.StringVar(&o.typ, "type", "data", "message type: data, insert or delete")
	f.StringVar(&o.keyPrefix, "key-prefix", "", "producer part of the idempotency keys (producer, epoch, seq) (default go-<hostname>-<pid>)")
	f.StringVar(&o.file, "file", "", "read lines from this file instead of standard input (- is standard input)")
	f.IntVar(&o.window, "window", 1, "append requests in flight (input order is kept at any window; a larger one is seldom faster: see above)")
	_ = cmd.MarkFlagRequired("vchannel")
	return cmd
}

// sent is one line handed to the producer.
type sent struct {
	line int
	f    *client.Future
}

// ackOut is an ack as produce --output json prints it.
type ackOut struct {
	Line      int    `json:"line"`
	Position  string `json:"position"`
	Offset    uint64 `json:"offset"`
	Index     uint32 `json:"index"`
	Term      uint64 `json:"term"`
	TimeTick  uint64 `json:"timetick,string"`
	Duplicate bool   `json:"duplicate"`
}

func produce(ctx context.Context, cmd *cobra.Command, o produceOptions) error {
	if err := o.out.validate(); err != nil {
		return err
	}
	in := cmd.InOrStdin()
	if o.file != "" && o.file != "-" {
		f, err := os.Open(o.file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	c, err := o.conn.client(cmd)
	if err != nil {
		return err
	}
	// A line may be as large as the server's default batch (the SDK's
	// default batch is half that).
	cfg := client.ProducerConfig{Name: o.keyPrefix, VChannel: o.vchannel, Window: o.window, MaxBatchBytes: system.DefaultMaxBatchBytes}
	var p *client.Producer
	target := o.pchannel
	if o.pchannel == "" {
		target = "vchannel " + o.vchannel
		p, err = c.VChannelProducer(o.vchannel, cfg)
	} else {
		p, err = c.Producer(o.pchannel, cfg)
	}
	if err != nil {
		return err
	}

	pending := make(chan sent, 256)
	printed := make(chan printResult, 1)
	go func() { printed <- printAcks(cmd.OutOrStdout(), o.out.json(), pending) }()

	lines, readErr := readLines(ctx, in)
	n := 0
	var sendErr error
read:
	for {
		var line []byte
		select {
		case l, ok := <-lines:
			if !ok {
				break read
			}
			line = l
		case <-ctx.Done():
			break read
		}
		n++
		f, err := p.SendAsync(ctx, client.Message{Type: o.typ, Payload: line})
		if err != nil {
			sendErr = lineError{n, err}
			break
		}
		pending <- sent{line: n, f: f}
	}
	close(pending)
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	closeErr := p.Close(closeCtx)
	res := <-printed
	fmt.Fprintf(cmd.ErrOrStderr(), "produced %d of %d messages to %s (producer %s, epoch %d)\n",
		res.acked, n, target, p.Name(), p.Epoch())
	switch {
	case res.err != nil:
		return res.err
	case closeErr != nil:
		return closeErr
	case sendErr != nil && !errors.Is(sendErr, ctx.Err()):
		return sendErr
	}
	return readErr()
}

type printResult struct {
	acked int
	err   error // the first failed message's
}

// printAcks prints the acks of pending in order, until the first failure.
func printAcks(w io.Writer, asJSON bool, pending <-chan sent) printResult {
	var r printResult
	for s := range pending {
		if r.err != nil {
			continue // drain: the producer fails the rest
		}
		a, err := s.f.Wait(context.Background())
		if err != nil {
			r.err = lineError{s.line, err}
			continue
		}
		r.acked++
		pos := client.AtID(a.ID)
		if asJSON {
			err = printJSON(w, ackOut{Line: s.line, Position: pos, Offset: a.ID.Offset, Index: a.ID.Index,
				Term: a.Term, TimeTick: a.TimeTick, Duplicate: a.Duplicate})
		} else {
			dup := ""
			if a.Duplicate {
				dup = " duplicate"
			}
			_, err = fmt.Fprintf(w, "%s timetick:%s%s\n", pos, strconv.FormatUint(a.TimeTick, 10), dup)
		}
		if err != nil {
			r.err = err
		}
	}
	return r
}

// readLines yields the lines of r without their line endings ("\n" or
// "\r\n") until EOF or ctx ends; the returned func reports a read error.
func readLines(ctx context.Context, r io.Reader) (<-chan []byte, func() error) {
	out := make(chan []byte)
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			line, rerr := br.ReadBytes('\n')
			if len(line) > 0 {
				line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
				select {
				case out <- line:
				case <-ctx.Done():
					return
				}
			}
			if rerr != nil {
				if rerr != io.EOF {
					err = rerr
				}
				return
			}
		}
	}()
	return out, func() error {
		select {
		case <-done:
			return err
		default:
			return nil // stopped by ctx while a read blocks
		}
	}
}
