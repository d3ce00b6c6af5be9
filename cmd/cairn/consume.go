package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

type consumeOptions struct {
	conn      connFlags
	out       outputFlag
	pchannel  string
	from      string
	follow    bool
	vchannels []string
	types     []string
	max       int
	wait      time.Duration
}

func newConsumeCmd() *cobra.Command {
	var o consumeOptions
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Print the messages of a pchannel or a vchannel from a position",
		Long: `consume reads a pchannel (--pchannel, optionally kept to some --vchannel),
or one vchannel alone (--vchannel without --pchannel: the server finds its
pchannel), in order from --from and prints one line per message: its
position, its vchannel and its payload — as is when it is
printable UTF-8, else as a Go-quoted string. With --output json each message
is a JSON object on its own line, payload in base64 as in the HTTP API.

Without --follow it stops at the tail; with --follow it long-polls for new
messages until Ctrl-C. --max stops after that many messages. At the end it
writes to standard error the position to resume from (--from), right after
the last message printed (not when it failed before the first message). A
--from id:OFFSET.INDEX past the pchannel's tail is said on standard error
first: nothing is there to read yet, and --follow waits until the pchannel
grows that far.

Positions: earliest (the default), latest (only what is appended from now
on), id:OFFSET.INDEX (that message and after), after:id:OFFSET.INDEX (the
messages after that one: resume after the last message handled without
reading it again), timetick:T (the first message whose timetick is at least
T). A position below a trim point (cairn pchannel trim, vchannel trim) fails
with code truncated and says which --from to use. A vchannel restored from a snapshot (cairn
snapshot restore) reads its restored history first, from earliest: those
messages' positions are restored:OFFSET.INDEX (IDs of the snapshot's source
pchannel; "restored": true in JSON), then come its own messages.`,
		Example: `  cairn consume --pchannel p0
  cairn consume --pchannel p0 --from latest --follow --vchannel v0
  cairn consume --vchannel orders --from id:9.1 --max 10 --output json
  cairn consume --vchannel orders --from after:id:9.1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return consume(ctx, cmd, o)
		},
	}
	addConnFlags(cmd, &o.conn)
	addOutputFlag(cmd, &o.out, "one message object per line")
	f := cmd.Flags()
	f.StringVar(&o.pchannel, "pchannel", "", "pchannel to read; without it, the one --vchannel given is read by vchannel")
	f.StringVar(&o.from, "from", client.Earliest, "position to start from: earliest, latest, id:OFFSET.INDEX, after:id:OFFSET.INDEX or timetick:T")
	f.BoolVarP(&o.follow, "follow", "f", false, "keep waiting for new messages at the tail until Ctrl-C")
	f.StringArrayVar(&o.vchannels, "vchannel", nil, "with --pchannel: print only this vchannel's messages (repeatable); without: the vchannel to read")
	f.StringArrayVar(&o.types, "type", nil, "print only messages of this type (repeatable; default data, insert, delete and broadcast)")
	f.IntVar(&o.max, "max", 0, "stop after this many messages (0: no limit)")
	f.DurationVar(&o.wait, "wait", 10*time.Second, "with --follow, how long each read long-polls (the server caps it)")
	return cmd
}

// messageOut is a message as consume --output json prints it.
type messageOut struct {
	Position   string            `json:"position"`
	Offset     uint64            `json:"offset"`
	Index      uint32            `json:"index"`
	Term       uint64            `json:"term"`
	TimeTick   uint64            `json:"timetick,string"`
	Type       string            `json:"type"`
	VChannel   string            `json:"vchannel,omitempty"`
	Payload    []byte            `json:"payload,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
	Key        *client.Key       `json:"key,omitempty"`
	// BroadcastID names the broadcast a message of type broadcast is a copy of.
	BroadcastID string `json:"broadcast_id,omitempty"`
	Restored    bool   `json:"restored,omitempty"` // from a restored vchannel's history
}

func consume(ctx context.Context, cmd *cobra.Command, o consumeOptions) error {
	if err := o.out.validate(); err != nil {
		return err
	}
	if o.max < 0 || o.wait <= 0 {
		return usagef("--max must be ≥ 0 and --wait positive")
	}
	c, err := o.conn.client(cmd)
	if err != nil {
		return err
	}
	cfg := client.ConsumerConfig{From: o.from, VChannels: o.vchannels, Types: o.types, Max: 1000, Wait: -1}
	if o.follow {
		cfg.Wait = o.wait
	}
	var co *client.Consumer
	source := o.pchannel
	switch {
	case o.pchannel != "":
		co, err = c.Consumer(o.pchannel, cfg)
	case len(o.vchannels) == 1:
		source = "vchannel " + o.vchannels[0]
		cfg.VChannels = nil
		co, err = c.VChannelConsumer(o.vchannels[0], cfg)
	default:
		return usagef("give --pchannel, or exactly one --vchannel to read by vchannel")
	}
	if err != nil {
		return err
	}
	if err := warnPastTail(ctx, cmd.ErrOrStderr(), c, o); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	n, lastRestored := 0, false
	err = nil
	for o.max == 0 || n < o.max {
		var ds []client.Delivery
		if o.follow {
			var d client.Delivery
			d, err = co.Next(ctx)
			ds = []client.Delivery{d}
		} else {
			limit := 0 // none
			if o.max > 0 {
				limit = o.max - n
			}
			ds, err = co.Poll(ctx, limit)
		}
		if err != nil || len(ds) == 0 {
			break
		}
		for _, d := range ds {
			if err = printMessage(w, o.out.json(), d); err != nil {
				break
			}
			n++
			lastRestored = d.Restored
		}
		if err != nil {
			break
		}
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = nil // Ctrl-C
	}
	if err == nil || n > 0 { // a failure before any message has nothing to resume from
		next := co.Position()
		if lastRestored && strings.HasPrefix(next, "id:") {
			// Past a restored history the position jumps to the vchannel's
			// own pchannel: not a rewind.
			next += " (where its own messages start, after the restored history)"
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "consumed %d messages from %s; resume with --from %s\n", n, source, next)
	}
	return err
}

func printMessage(w io.Writer, asJSON bool, d client.Delivery) error {
	pos := d.Position()
	if asJSON {
		return printJSON(w, messageOut{Position: pos, Offset: d.ID.Offset, Index: d.ID.Index, Term: d.Term,
			TimeTick: d.TimeTick, Type: d.Type, VChannel: d.VChannel, Payload: d.Payload,
			Properties: d.Properties, Key: d.Key, BroadcastID: d.BroadcastID, Restored: d.Restored})
	}
	_, err := fmt.Fprintf(w, "%s %s %s\n", pos, d.VChannel, printable(d.Payload))
	return err
}

// printable is b as is when it is UTF-8 without control characters (tabs
// aside), else Go-quoted.
func printable(b []byte) string {
	if !utf8.Valid(b) {
		return strconv.Quote(string(b))
	}
	for _, r := range string(b) {
		if r != '\t' && unicode.IsControl(r) {
			return strconv.Quote(string(b))
		}
	}
	return string(b)
}

// warnPastTail says so when --from id:OFFSET.INDEX lies past the tail of
// the pchannel read: no message is there (yet), so a read returns none and
// --follow waits until the pchannel grows that far.
func warnPastTail(ctx context.Context, w io.Writer, c *client.Client, o consumeOptions) error {
	rest, ok := strings.CutPrefix(strings.TrimPrefix(o.from, "after:"), "id:")
	if !ok {
		return nil
	}
	offset, err := strconv.ParseUint(strings.SplitN(rest, ".", 2)[0], 10, 64)
	if err != nil {
		return nil // the server says what is wrong with it
	}
	p := o.pchannel
	if p == "" {
		v, err := c.VChannel(ctx, o.vchannels[0])
		if err != nil {
			return err
		}
		p = v.PChannel
	}
	tail, err := c.Tail(ctx, p)
	if err != nil || offset <= tail.NextOffset {
		return err
	}
	then := "nothing to read there yet"
	if o.follow {
		then = "waiting until the pchannel grows that far"
	}
	fmt.Fprintf(w, "--from %s is past the tail of pchannel %s (its next message will be id:%d.0): %s\n", o.from, p, tail.NextOffset, then)
	return nil
}
