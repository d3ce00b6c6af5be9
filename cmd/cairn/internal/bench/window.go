package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// The window phase (issue #16): a million keyed 1 KiB messages on one
// vchannel, as `cairn produce` sends a file (one producer counting its seq
// up, many per request), so that the idempotency window is full; then
// reads before and after a flush, and a takeover that must rebuild that
// window.
const (
	// windowMessagesPerSecond of Duration are appended, at most
	// windowMessages: a million at the default Duration.
	windowMessagesPerSecond = 200_000
	windowMessages          = 1_000_000
	windowPerAppend         = 900  // messages per request: about as many 1 KiB messages as a 1 MiB batch holds, as `cairn produce` batches them
	windowAppenders         = 8    // requests in flight: the writer's W
	windowPayloadSize       = 1024 // the 1 KiB messages
	windowVChannel          = "lines"
)

// window fills a pchannel with windowMessages keyed lines, scans its
// vchannel from the WAL, flushes it, scans it again from segments, and
// then times a takeover of it against one of a pchannel with a small
// window (the takeover phase's recipe), both after their holder died.
func (r *runner) window(ctx context.Context) error {
	const pch, basePch = "window", "window-base"
	total := min(windowMessages, max(windowPerAppend, int(r.cfg.Duration.Seconds()*windowMessagesPerSecond)))
	r.progress("window: appending %d keyed lines to one vchannel", total)
	holder, holderLeases, err := r.takeoverHolder(ctx, pch, 0)
	if err != nil {
		return err
	}
	defer func() { closeWriters(holder) }()
	if err := r.fillLines(ctx, holder, total); err != nil {
		return err
	}
	st := holder.Stats()
	want := walFill{msgs: int(st.MessagesAcked), bytes: st.BytesAcked, frontier: st.Frontier}

	r.progress("window: scanning %s from the WAL", windowVChannel)
	before, err := r.scanPass(ctx, pch, nil, want, windowVChannel)
	if err != nil {
		return fmt.Errorf("WAL scan: %w", err)
	}
	r.progress("window: flushing")
	f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: pch, Layout: r.layout, Logger: r.log}, r.store)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := f.FlushNow(ctx); err != nil {
		return err
	}
	flushed := time.Since(t0)
	cp, _, err := segmentlog.ReadCheckpoint(ctx, r.store, r.layout, pch)
	if err != nil {
		return err
	}
	cpObj, err := r.store.Get(ctx, r.layout.Checkpoint(pch)) // its size
	if err != nil {
		return err
	}
	var stateBytes int64
	if cp.DedupState != "" {
		a, err := r.store.Head(ctx, cp.DedupState)
		if err != nil {
			return err
		}
		stateBytes = a.Size
	}
	r.progress("window: scanning %s from segments", windowVChannel)
	after, err := r.scanPass(ctx, pch, snapshot.NewSegmentReader(r.store, 0), want, windowVChannel)
	if err != nil {
		return fmt.Errorf("segment scan: %w", err)
	}

	r.progress("window: a takeover with the full window, and one with a small window")
	took, next, err := r.timeTakeover(ctx, pch, holderLeases, 1)
	if err != nil {
		return err
	}
	closeWriters(holder) // dead: its release fails, and that is the point
	holder = next
	base, baseLeases, err := r.takeoverHolder(ctx, basePch, 0)
	if err != nil {
		return err
	}
	defer func() { closeWriters(base) }()
	if err := r.appendAndFlush(ctx, base, basePch, 1); err != nil {
		return err
	}
	baseTook, baseNext, err := r.timeTakeover(ctx, basePch, baseLeases, 1)
	if err != nil {
		return err
	}
	closeWriters(base)
	base = baseNext

	r.rep.set("window_messages", float64(want.msgs))
	r.rep.set("window_dedup_state_bytes", float64(stateBytes))
	r.rep.set("window_checkpoint_bytes", float64(len(cpObj.Body)))
	r.rep.set("window_consume_wal_mbps", before.mbps())
	r.rep.set("window_consume_segments_mbps", after.mbps())
	r.rep.set("window_consume_ratio", after.mbps()/before.mbps())
	r.rep.set("window_flush_mbps", float64(want.bytes)/flushed.Seconds()/1e6)
	r.rep.set("window_takeover_ms", ms(took))
	r.rep.set("window_takeover_base_ms", ms(baseTook))
	r.rep.set("window_takeover_ratio", took.Seconds()/baseTook.Seconds())
	return nil
}

// takeoverHolder opens a writer of pch with the takeover phase's short
// lease, through leases it can kill.
func (r *runner) takeoverHolder(ctx context.Context, pch string, i int) (*segmentlog.Writer, *killableLeases, error) {
	l, err := coordinator.NewLeases(r.store, r.layout, coordinator.LeaseConfig{TTL: takeoverTTL, Margin: takeoverMargin},
		coordinator.WithRequestTimeout(takeoverRequestTimeout))
	if err != nil {
		return nil, nil, err
	}
	leases := &killableLeases{Leases: l}
	w, err := segmentlog.OpenWriter(ctx, segmentlog.WriterConfig{PChannel: pch, Layout: r.layout, Holder: fmt.Sprintf("bench-window-%d", i),
		RenewInterval: takeoverRenew, TimeTickInterval: -1, Logger: r.log}, r.store, leases)
	if err != nil {
		return nil, nil, err
	}
	return w, leases, nil
}

// timeTakeover kills the holder of pch, waits until its lease is takeable
// (not timed) and times a new holder from OpenWriter to its first acked
// append, which it returns open.
func (r *runner) timeTakeover(ctx context.Context, pch string, holder *killableLeases, i int) (time.Duration, *segmentlog.Writer, error) {
	holder.kill()
	rec, err := holder.Describe(ctx, pch)
	if err != nil {
		return 0, nil, err
	}
	if d := time.Until(rec.Expires.Add(takeoverMargin)); d > 0 {
		time.Sleep(d + time.Millisecond) // taken only strictly after expiry + margin
	}
	t0 := time.Now()
	w, _, err := r.takeoverHolder(ctx, pch, i)
	if err != nil {
		return 0, nil, fmt.Errorf("take over %s: %w", pch, err)
	}
	if _, err := w.Append(ctx, segmentlog.Message{Type: segmentlog.TypeData, VChannel: windowVChannel, Payload: []byte("first")}); err != nil {
		closeWriters(w)
		return 0, nil, fmt.Errorf("take over %s: first append: %w", pch, err)
	}
	return time.Since(t0), w, nil
}

// fillLines appends total keyed messages to w, windowPerAppend per call
// and windowAppenders calls in flight, one producer per caller whose seq
// counts up over its calls: each producer's batches land in seq order, as
// an SDK Producer orders them at any window. (Batches of one producer
// landing out of seq order cost the window an index entry per key.)
func (r *runner) fillLines(ctx context.Context, w *segmentlog.Writer, total int) error {
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for g := range windowAppenders {
		wg.Go(func() {
			producer := fmt.Sprintf("cli-produce-%d", g)
			var seq uint64
			for c := next.Add(1) - 1; c*windowPerAppend < int64(total); c = next.Add(1) - 1 {
				msgs := make([]segmentlog.Message, min(windowPerAppend, int64(total)-c*windowPerAppend))
				for i := range msgs {
					msgs[i] = segmentlog.Message{Type: segmentlog.TypeData, VChannel: windowVChannel,
						Payload: fmt.Appendf(nil, "%0*d", windowPayloadSize, uint64(c*windowPerAppend)+uint64(i)),
						Key:     segmentlog.IdemKey{Producer: producer, Epoch: 1, Seq: seq}}
					seq++
				}
				if _, err := w.Append(ctx, msgs...); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(firstErr, ctx.Err())
}
