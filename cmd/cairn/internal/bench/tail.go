package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/cache"
	"github.com/cairnlog/cairn/segmentlog"
)

const (
	// tailPace is the interval between appends while tail latency is
	// measured.
	tailPace = 20 * time.Millisecond
	// longPollInterval is the long-poll scanner's PollMax: its longest pause
	// between two probes of the next slot (PollMin keeps its 5 ms default).
	longPollInterval = 20 * time.Millisecond
)

// stopPayload ends the tail readers.
var stopPayload = []byte("stop")

// delivery is one message a tail reader saw, and when.
type delivery struct {
	id segmentlog.MessageID
	at time.Time
}

// tail appends 1 KiB messages at tailPace for 2 × Duration while two
// scanners follow the pchannel: one in-process (the writer's cache and
// tail notification) and one long-polling the store. After each append the
// appender GETs the slot it just wrote, for the raw GET latency under the
// same load.
func (r *runner) tail(ctx context.Context) error {
	r.progress("tail: %v of appends every %v, followed in-process and by long poll", 2*r.cfg.Duration, tailPace)
	c, err := cache.New[*segmentlog.Batch](cache.Config{})
	if err != nil {
		return err
	}
	defer c.Close()
	tn := &cache.Tail{}
	const pch = "tail"
	w, err := r.openWriter(ctx, pch, nil, func(cfg *segmentlog.WriterConfig) { cfg.Cache, cfg.Tail = c, tn })
	if err != nil {
		return err
	}
	defer closeWriters(w)

	inproc, err := segmentlog.NewScanner(ctx, segmentlog.ScannerConfig{PChannel: pch, Layout: r.layout,
		From: segmentlog.Latest(), Cache: c, Tail: tn}, r.store)
	if err != nil {
		return err
	}
	defer inproc.Close()
	longPoll, err := segmentlog.NewScanner(ctx, segmentlog.ScannerConfig{PChannel: pch, Layout: r.layout,
		From: segmentlog.Latest(), PollMax: longPollInterval}, r.store)
	if err != nil {
		return err
	}
	defer longPoll.Close()
	rctx, cancel := context.WithCancel(ctx)
	inprocC, longPollC := follow(rctx, inproc), follow(rctx, longPoll)
	defer func() {
		// The readers leave their scanners before those are closed.
		cancel()
		<-inprocC
		<-longPollC
	}()

	payload := randomBytes(1 << 10)
	acked := map[segmentlog.MessageID]time.Time{}
	var gets latencies
	deadline := time.Now().Add(2 * r.cfg.Duration)
	for next := time.Now(); next.Before(deadline); {
		acks, err := w.Append(ctx, segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", Payload: payload})
		if err != nil {
			return err
		}
		acked[acks[0].ID] = time.Now()
		t0 := time.Now()
		if _, err := r.store.Get(ctx, r.layout.WAL(pch, acks[0].ID.Offset)); err != nil {
			return err
		}
		gets = append(gets, time.Since(t0))
		next = next.Add(tailPace)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			next = time.Now()
		}
	}
	if _, err := w.Append(ctx, segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", Payload: stopPayload}); err != nil {
		return err
	}
	in, err := tailLatencies(inprocC, acked, "in-process")
	if err != nil {
		return err
	}
	lp, err := tailLatencies(longPollC, acked, "long-poll")
	if err != nil {
		return err
	}
	r.rep.set("tail_inproc_p50_ms", in.quantileMs(0.50))
	r.rep.set("tail_inproc_p99_ms", in.quantileMs(0.99))
	r.rep.set("tail_longpoll_p50_ms", lp.quantileMs(0.50))
	r.rep.set("tail_longpoll_p99_ms", lp.quantileMs(0.99))
	r.rep.set("tail_poll_interval_ms", ms(longPollInterval))
	r.rep.set("raw_get_p50_ms", gets.quantileMs(0.50))
	r.rep.set("raw_get_p99_ms", gets.quantileMs(0.99))
	return nil
}

// followResult is what a tail reader saw before the stop message.
type followResult struct {
	seen []delivery
	err  error
}

// follow reads sc in a goroutine until the stop message (or an error),
// hands over everything it saw and closes the channel.
func follow(ctx context.Context, sc *segmentlog.Scanner) <-chan followResult {
	out := make(chan followResult, 1)
	go func() {
		defer close(out)
		var res followResult
		for {
			d, err := sc.Next(ctx)
			at := time.Now()
			if err != nil {
				res.err = err
				break
			}
			if string(d.Payload) == string(stopPayload) {
				break
			}
			res.seen = append(res.seen, delivery{d.ID, at})
		}
		out <- res
	}()
	return out
}

// tailLatencies matches a reader's deliveries with their acks. The writer
// wakes in-process readers just before Append returns, so a delivery may
// be seen a hair before its ack: that counts as 0.
func tailLatencies(c <-chan followResult, acked map[segmentlog.MessageID]time.Time, what string) (latencies, error) {
	var res followResult
	select {
	case res = <-c:
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("%s reader: no stop message 30 s after the last append", what)
	}
	if res.err != nil {
		return nil, fmt.Errorf("%s reader: %w", what, res.err)
	}
	if len(res.seen) != len(acked) {
		return nil, fmt.Errorf("%s reader delivered %d messages; %d were acked", what, len(res.seen), len(acked))
	}
	lat := make(latencies, 0, len(res.seen))
	for _, d := range res.seen {
		at, ok := acked[d.id]
		if !ok {
			return nil, fmt.Errorf("%s reader delivered %v, which was never acked", what, d.id)
		}
		lat = append(lat, max(0, d.at.Sub(at)))
	}
	return lat, nil
}
