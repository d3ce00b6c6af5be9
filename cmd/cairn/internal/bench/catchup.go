package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

const (
	// catchUpBytesPerSecond of Duration sizes the catch-up WAL, between
	// catchUpMin and catchUpMax.
	catchUpBytesPerSecond = 4 << 20
	catchUpMin            = 4 << 20
	catchUpMax            = 64 << 20
	// catchUpReadAhead is the parallelism of the raw GETs (the scanner's
	// default read-ahead).
	catchUpReadAhead = 16
)

// walFill is what fill wrote.
type walFill struct {
	msgs     int
	bytes    int64  // batch object bytes acked
	frontier uint64 // every slot below was written
}

// catchUp fills two pchannels with the same messages, flushes one to Arrow
// segments, then reads the other from its WAL, the flushed one from its
// segments, and the WAL's objects with raw GETs, pass after pass in turn
// (a read that has had Duration drops out).
func (r *runner) catchUp(ctx context.Context) error {
	volume := min(max(int(r.cfg.Duration.Seconds()*catchUpBytesPerSecond), catchUpMin), catchUpMax)
	const walP, segP = "catchup-wal", "catchup-seg"
	r.progress("catchup: filling two pchannels with %d MiB each", volume>>20)
	wal, err := r.fill(ctx, walP, volume)
	if err != nil {
		return err
	}
	seg, err := r.fill(ctx, segP, volume)
	if err != nil {
		return err
	}
	if wal.msgs != seg.msgs {
		return fmt.Errorf("filled %d and %d messages", wal.msgs, seg.msgs)
	}
	r.progress("catchup: flushing %s to segments", segP)
	f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: segP, Layout: r.layout, Logger: r.log}, r.store)
	if err != nil {
		return err
	}
	t0 := time.Now()
	rounds, err := f.FlushNow(ctx)
	if err != nil {
		return err
	}
	flushed := time.Since(t0)
	var segBytes int64
	var segFiles int
	for _, rd := range rounds {
		for _, s := range rd.Segments {
			segBytes += s.Bytes
			segFiles++
		}
	}

	r.progress("catchup: %v each of WAL scans, segment scans and raw GETs, in turn", r.cfg.Duration)
	segReader := snapshot.NewSegmentReader(r.store, 0)
	var walT, segT, rawT tally
	for walT.elapsed < r.cfg.Duration || segT.elapsed < r.cfg.Duration || rawT.elapsed < r.cfg.Duration {
		if walT.elapsed < r.cfg.Duration {
			t, err := r.scanPass(ctx, walP, nil, wal)
			if err != nil {
				return fmt.Errorf("WAL scan: %w", err)
			}
			walT.add(t)
		}
		if segT.elapsed < r.cfg.Duration {
			t, err := r.scanPass(ctx, segP, segReader, seg)
			if err != nil {
				return fmt.Errorf("segment scan: %w", err)
			}
			segT.add(t)
		}
		if rawT.elapsed < r.cfg.Duration {
			t, err := r.rawGetPass(ctx, walP, wal)
			if err != nil {
				return fmt.Errorf("raw GETs: %w", err)
			}
			rawT.add(t)
		}
	}
	r.rep.set("catchup_wal_mbps", walT.mbps())
	r.rep.set("catchup_segments_mbps", segT.mbps())
	r.rep.set("catchup_raw_get_mbps", rawT.mbps())
	r.rep.set("catchup_segments_ratio", segT.mbps()/walT.mbps())
	r.rep.set("catchup_wal_bytes", float64(wal.bytes))
	r.rep.set("catchup_segment_bytes", float64(segBytes))
	r.rep.set("catchup_segment_files", float64(segFiles))
	r.rep.set("segment_bytes_per_wal_mb", float64(segBytes)/(float64(seg.bytes)/1e6))
	r.rep.set("segment_overhead_bytes", float64(snapshot.SegmentOverheadBytes()))
	r.rep.set("flush_mbps", float64(seg.bytes)/flushed.Seconds()/1e6)
	return nil
}

// fill appends about volume bytes of 1 KiB keyed messages over four
// vchannels from 32 producers, with group commit making batches of up to
// 256 KiB (as snapshot's benchmarks do). Payloads are half random bytes,
// half repetitive text, like rows with an embedding and a few attributes;
// the same for every pchannel.
func (r *runner) fill(ctx context.Context, pch string, volume int) (walFill, error) {
	w, err := r.openWriter(ctx, pch, nil, func(c *segmentlog.WriterConfig) {
		c.MaxBatchBytes, c.Linger = 256<<10, 2*time.Millisecond
	})
	if err != nil {
		return walFill{}, err
	}
	defer closeWriters(w)
	const fillers, size = 32, 1 << 10
	per := max(1, volume/size/fillers)
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for p := range fillers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			for i := range per {
				payload := make([]byte, size)
				for j := 0; j < size/2; j += 8 {
					v := rng.Uint64()
					for k := range 8 {
						payload[j+k] = byte(v >> (8 * k))
					}
				}
				copy(payload[size/2:], fmt.Sprintf("%0512d", i))
				m := segmentlog.Message{Type: segmentlog.TypeInsert, VChannel: fmt.Sprintf("v%d", (p+i)%4), Payload: payload,
					Key: segmentlog.IdemKey{Producer: fmt.Sprintf("p%d", p), Epoch: 1, Seq: uint64(i + 1)}}
				if _, err := w.Append(ctx, m); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return walFill{}, firstErr
	}
	st := w.Stats()
	return walFill{msgs: int(st.MessagesAcked), bytes: st.BytesAcked, frontier: st.Frontier}, nil
}

// scanPass reads pch (only vchannels, if any) from the start to the tail
// with a scanner (from segments when segs is set) and counts the WAL bytes
// the messages came in.
func (r *runner) scanPass(ctx context.Context, pch string, segs segmentlog.SegmentReader, want walFill, vchannels ...string) (tally, error) {
	start := time.Now()
	cfg := segmentlog.ScannerConfig{PChannel: pch, Layout: r.layout, From: segmentlog.Earliest(), NoWait: true, Segments: segs, VChannels: vchannels}
	sc, err := segmentlog.NewScanner(ctx, cfg, r.store)
	if err != nil {
		return tally{}, err
	}
	defer sc.Close()
	n := 0
	for {
		_, err := sc.Next(ctx)
		if errors.Is(err, segmentlog.ErrTail) {
			break
		}
		if err != nil {
			return tally{}, err
		}
		n++
	}
	if n != want.msgs {
		return tally{}, fmt.Errorf("read %d messages of %s, want %d", n, pch, want.msgs)
	}
	return tally{bytes: want.bytes, msgs: int64(n), elapsed: time.Since(start)}, nil
}

// rawGetPass GETs every slot of pch below the frontier, catchUpReadAhead at
// a time.
func (r *runner) rawGetPass(ctx context.Context, pch string, want walFill) (tally, error) {
	start := time.Now()
	var next, read atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range catchUpReadAhead {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(want.frontier) && ctx.Err() == nil; i = next.Add(1) - 1 {
				obj, err := r.store.Get(ctx, r.layout.WAL(pch, uint64(i)))
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				read.Add(int64(len(obj.Body)))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(firstErr, ctx.Err()); err != nil {
		return tally{}, err
	}
	return tally{bytes: read.Load(), msgs: int64(want.frontier), elapsed: time.Since(start)}, nil
}
