package segmentlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/cairnlog/cairn/infra/backoff"
	"github.com/cairnlog/cairn/infra/objstore"
)

// StartKind says where a scanner starts.
type StartKind uint8

const (
	StartEarliest   StartKind = iota // the oldest message still kept
	StartLatest                      // only messages appended from now on
	StartAtID                        // the message with this ID and after
	StartAtTimeTick                  // the first message whose timetick ≥ TimeTick
)

// Position is a scanner's start.
type Position struct {
	Kind     StartKind
	ID       MessageID
	TimeTick uint64
}

// Earliest, Latest, AtID and AtTimeTick build positions.
func Earliest() Position              { return Position{Kind: StartEarliest} }
func Latest() Position                { return Position{Kind: StartLatest} }
func AtID(id MessageID) Position      { return Position{Kind: StartAtID, ID: id} }
func AtTimeTick(tick uint64) Position { return Position{Kind: StartAtTimeTick, TimeTick: tick} }
func (p Position) String() string {
	switch p.Kind {
	case StartEarliest:
		return "earliest"
	case StartLatest:
		return "latest"
	case StartAtID:
		return "id:" + p.ID.String()
	default:
		return fmt.Sprintf("timetick:%d", p.TimeTick)
	}
}

// ErrTail: the scanner reached the tail and was configured not to wait.
var ErrTail = errors.New("segmentlog: at the tail")

// ErrTruncated: the position lies below what can be read: below a trim
// point (a *TruncatedError, which names the earliest readable position), or
// below the flush checkpoint without a SegmentReader.
var ErrTruncated = errors.New("segmentlog: position is below the flush checkpoint")

// ScannerConfig configures a Scanner. Zero fields take the documented
// defaults.
type ScannerConfig struct {
	PChannel string // required
	Layout   Layout
	From     Position
	// VChannels, if not empty, keeps only messages of these vchannels.
	VChannels []string
	// Types, if not empty, keeps only these message types. Default: those
	// MessageType.ReadByDefault accepts (data, insert, delete, broadcast).
	Types []MessageType
	// MinTimeTick keeps only messages with a timetick ≥ it.
	MinTimeTick uint64
	// ReadAhead bounds parallel GETs while catching up. Default 16.
	ReadAhead int
	// GetTimeout bounds one GET attempt. Default 1 s.
	GetTimeout time.Duration
	// PollMin and PollMax bound the backoff between probes of the next slot
	// while waiting at the tail without an in-process writer. Defaults 5 ms
	// and 250 ms: an idle tail reader makes at most 4 GETs a second.
	PollMin, PollMax time.Duration
	// Cache is read before the store; Tail wakes a reader at the tail when
	// the writer is in this process. Both optional.
	Cache BatchCache
	Tail  TailWaiter
	// Checkpoints reads the checkpoint record (a conditional GET: a
	// record unchanged since it last read it is not downloaded again);
	// scanners of one node share one. Default: a cache of the scanner's
	// own.
	Checkpoints *CheckpointCache
	// NoWait makes Next return ErrTail at the tail instead of waiting.
	NoWait bool
	// Segments serves positions below the flush checkpoint. Without it such
	// positions fail with ErrTruncated.
	Segments SegmentReader
	// Trim is a trim point of the reader's own beside the pchannel's
	// (Checkpoint.Trim): a vchannel's. The higher of the two is the
	// earliest readable ID; a start below it fails with a TruncatedError.
	Trim MessageID
	// EarliestID is where StartEarliest and StartAtTimeTick begin when it
	// lies above every trim point: a vchannel's create message, before
	// which none of its messages lands. Zero: the pchannel's start.
	EarliestID MessageID
	// Pause, if set, holds Next back while the node's startup pause is on,
	// unless IgnorePause.
	Pause       *PauseGate
	IgnorePause bool
}

// SegmentReader serves the flushed part of a pchannel, below the
// checkpoint, from segments (the snapshot package implements it over Arrow
// files reached through the checkpoint's manifest).
type SegmentReader interface {
	// Open iterates, in ID order, the delivered messages of the pchannel
	// below cp.C with an ID ≥ from, of the given vchannels (all if empty).
	Open(ctx context.Context, cp Checkpoint, from MessageID, vchannels []string) (SegmentIterator, error)
}

// SegmentIterator is one pass over segments; Next returns io.EOF after the
// last message.
type SegmentIterator interface {
	Next(ctx context.Context) (Delivery, error)
	Close() error
}

// TailWaiter blocks until the ack frontier of a pchannel passes after;
// cache.Tail implements it. It fails with an error when no writer of the
// pchannel runs in this process.
type TailWaiter interface {
	Wait(ctx context.Context, pchannel string, after uint64) (uint64, error)
}

// Delivery is one delivered message.
type Delivery struct {
	ID   MessageID
	Term uint64
	Message
}

// ScannerStats counts a scanner's reads.
type ScannerStats struct {
	Delivered  int64
	Batches    int64 // delivered batches
	CacheHits  int64
	StoreReads int64 // slot GETs issued, found or not
	TailWaits  int64 // in-process tail waits
	TailProbes int64 // store probes of an empty next slot
	Skipped    int64 // batches the reading rule held back (fence, filler, garbage)
}

// Scanner reads one pchannel in offset order, applying the reading rule of
// docs/protocol.md: it delivers a batch only if its term is at least the highest
// term of every earlier slot, never delivers fence or filler batches, and
// returns a clear error on a corrupt batch instead of skipping it. At the
// tail it waits (woken by an in-process writer, or probing the next slot
// with bounded backoff). A Scanner is not safe for concurrent use.
type Scanner struct {
	cfg    ScannerConfig
	store  objstore.Store
	types  map[MessageType]bool
	vchans map[string]bool

	offset   uint64 // next slot to read
	skipIdx  uint32 // messages of the slot at offset below this index are skipped
	filter   TermFilter
	pf       *prefetcher
	buf      []Delivery
	seg      SegmentIterator // non-nil while reading below the checkpoint
	segCP    Checkpoint      // the checkpoint seg reads below
	segFrom  MessageID       // the next ID seg returns: where a reopened seg goes on
	resume   Position        // right after the last delivered message
	pollWait time.Duration
	atTail   bool // the checkpoint was checked since the last slot read
	stats    ScannerStats
}

// NewScanner resolves cfg.From against the pchannel and returns a scanner
// positioned there.
func NewScanner(ctx context.Context, cfg ScannerConfig, store objstore.Store) (*Scanner, error) {
	if err := ValidateName("pchannel", cfg.PChannel); err != nil {
		return nil, err
	}
	if cfg.ReadAhead == 0 {
		cfg.ReadAhead = 16
	}
	if cfg.GetTimeout == 0 {
		cfg.GetTimeout = time.Second
	}
	if cfg.PollMin == 0 {
		cfg.PollMin = 5 * time.Millisecond
	}
	if cfg.PollMax == 0 {
		cfg.PollMax = 250 * time.Millisecond
	}
	if cfg.Checkpoints == nil {
		cfg.Checkpoints = NewCheckpointCache(store, cfg.Layout)
	}
	s := &Scanner{cfg: cfg, store: store, types: map[MessageType]bool{}, vchans: map[string]bool{}}
	for t := range MessageType(math.MaxUint8) {
		if t.Wanted(cfg.Types) {
			s.types[t] = true
		}
	}
	for _, v := range cfg.VChannels {
		if err := ValidateName("vchannel", v); err != nil {
			return nil, err
		}
		s.vchans[v] = true
	}
	cp, _, err := cfg.Checkpoints.Read(ctx, cfg.PChannel)
	if err != nil {
		return nil, err
	}
	var start uint64
	floor := floorOf(cp.Trim, cfg.Trim)
	switch cfg.From.Kind {
	case StartEarliest:
		start = cp.C
	case StartAtTimeTick:
		start = cp.C
		s.cfg.MinTimeTick = max(s.cfg.MinTimeTick, cfg.From.TimeTick)
	case StartAtID:
		from := cfg.From.ID
		if from.Less(floor) {
			// A reader that read everything it wants below the point (its
			// resume position is right after the last message of a batch,
			// or only other vchannels' messages lie between) is past it.
			empty, err := s.gapEmpty(ctx, from, floor)
			if err != nil {
				return nil, err
			}
			if !empty {
				return nil, &TruncatedError{PChannel: cfg.PChannel, From: from, Earliest: floor}
			}
			from = floor
		}
		start, s.skipIdx = from.Offset, from.Index
	case StartLatest:
		if start, err = FindTail(ctx, store, cfg.Layout, cfg.PChannel, cp.C, cfg.GetTimeout); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("segmentlog: unknown start kind %d", cfg.From.Kind)
	}
	s.resume = cfg.From
	if cfg.From.Kind == StartEarliest || cfg.From.Kind == StartAtTimeTick {
		// Everything readable: segments first, if any.
		first := floorOf(floor, cfg.EarliestID)
		start, s.skipIdx = first.Offset, first.Index
	}
	s.pf = newPrefetcher(store, cfg.Layout, cfg.PChannel, start, cfg.ReadAhead, cfg.GetTimeout)
	s.pollWait = cfg.PollMin
	if start < cp.C {
		if err := s.openSegments(ctx, cp, MessageID{Offset: start, Index: s.skipIdx}); err != nil {
			return nil, err
		}
		return s, nil
	}
	if err := s.seedFilter(ctx, cp, start); err != nil {
		return nil, err
	}
	s.offset = start
	s.pf.seek(start)
	return s, nil
}

// openSegments continues the scan below cp.C from segments; the WAL takes
// over at cp.C, where the checkpoint's max_term seeds the reading rule, so
// the handover has no gap and no duplicate. A segment file that is gone
// (ErrSegmentMissing) sends it to a newer checkpoint (refresh).
func (s *Scanner) openSegments(ctx context.Context, cp Checkpoint, from MessageID) error {
	if s.cfg.Segments == nil {
		return fmt.Errorf("scan %s from %v: %w (checkpoint %d) and no segment reader", s.cfg.PChannel, from, ErrTruncated, cp.C)
	}
	for refreshed := 0; ; refreshed++ {
		it, err := s.cfg.Segments.Open(ctx, cp, from, s.cfg.VChannels)
		if err == nil {
			s.seg, s.segCP, s.segFrom, s.buf = it, cp, from, nil
			return nil
		}
		if !errors.Is(err, ErrSegmentMissing) || refreshed >= maxSegmentRefresh {
			return fmt.Errorf("scan %s: open segments below %d: %w", s.cfg.PChannel, cp.C, err)
		}
		if cp, err = s.refresh(ctx, cp, err); err != nil {
			return err
		}
	}
}

// maxSegmentRefresh bounds how often one segment read moves to a newer
// checkpoint after meeting a missing file: each move needs the checkpoint
// to have changed, and a manifest outlives its files only by the grace GC
// gives retired files.
const maxSegmentRefresh = 8

// refresh re-reads the checkpoint after a segment file of old's manifest
// was missing. Compaction replaced the file by a merged one covering the
// same IDs, and GC deleted it once its grace was over: a newer checkpoint
// names the merged file. The same checkpoint means the manifest itself is
// broken (invariant I10), which is reported.
func (s *Scanner) refresh(ctx context.Context, old Checkpoint, missing error) (Checkpoint, error) {
	cp, _, err := s.cfg.Checkpoints.Read(ctx, s.cfg.PChannel)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("scan %s: segments: %w (and the checkpoint cannot be re-read: %v)", s.cfg.PChannel, missing, err)
	}
	if cp.Version == old.Version {
		return Checkpoint{}, fmt.Errorf("scan %s: segments of checkpoint version %d: %w", s.cfg.PChannel, old.Version, missing)
	}
	if err := s.checkTrim(cp, s.segFrom); err != nil {
		return Checkpoint{}, err
	}
	return cp, nil
}

// maxGapSlots bounds the WAL slots gapEmpty reads.
const maxGapSlots = 64

// gapEmpty reports whether no message this scanner would deliver has an
// ID in [from, floor), reading the WAL slots between (at most
// maxGapSlots). A slot that is gone (collected below the checkpoint) or a
// wider gap counts as not empty: the reader is told, never left to guess.
func (s *Scanner) gapEmpty(ctx context.Context, from, floor MessageID) (bool, error) {
	last := floor.Offset // the last slot that may hold a message below floor
	if floor.Index == 0 {
		if last == 0 {
			return true, nil
		}
		last--
	}
	if last < from.Offset || last-from.Offset >= maxGapSlots {
		return last < from.Offset, nil
	}
	for off := from.Offset; off <= last; off++ {
		r := readSlot(ctx, s.store, s.cfg.Layout, s.cfg.PChannel, off, s.cfg.GetTimeout)
		switch {
		case r.err != nil:
			return false, r.err
		case r.missing:
			return false, nil
		}
		for i := range r.batch.Messages {
			id := MessageID{Offset: off, Index: uint32(i)}
			if !id.Less(from) && id.Less(floor) && s.keep(&r.batch.Messages[i]) {
				return false, nil
			}
		}
	}
	return true, nil
}

// checkTrim fails with a TruncatedError when at, the next ID the scan
// would deliver, lies below a trim point of cp (or the scanner's own): a
// trim passed the scan while it read, and GC may have taken what lies
// between. The scan never skips that part silently.
func (s *Scanner) checkTrim(cp Checkpoint, at MessageID) error {
	if floor := floorOf(cp.Trim, s.cfg.Trim); at.Less(floor) {
		return &TruncatedError{PChannel: s.cfg.PChannel, From: at, Earliest: floor}
	}
	return nil
}

// nextSegment delivers from segments, switching to the WAL at the end. A
// segment file that is gone reopens the segments at the next ID under a
// newer checkpoint.
func (s *Scanner) nextSegment(ctx context.Context) error {
	refreshed := 0
	for {
		d, err := s.seg.Next(ctx)
		if errors.Is(err, ErrSegmentMissing) && refreshed < maxSegmentRefresh {
			refreshed++
			cp, rerr := s.refresh(ctx, s.segCP, err)
			if rerr != nil {
				return rerr
			}
			s.seg.Close()
			s.seg = nil
			if err := s.openSegments(ctx, cp, s.segFrom); err != nil {
				return err
			}
			continue
		}
		if err == nil {
			s.segFrom = MessageID{Offset: d.ID.Offset, Index: d.ID.Index + 1}
		}
		if errors.Is(err, io.EOF) {
			s.seg.Close()
			s.seg = nil
			s.offset, s.skipIdx = s.segCP.C, 0
			s.filter.Max = max(s.filter.Max, s.segCP.MaxTerm)
			s.pf.seek(s.offset)
			return nil
		}
		if err != nil {
			return fmt.Errorf("scan %s: segments: %w", s.cfg.PChannel, err)
		}
		if s.keep(&d.Message) {
			s.buf = append(s.buf, d)
			return nil
		}
	}
}

// seedFilter sets the highest term of every slot before start: the
// checkpoint's max_term covers the slots below c, and the W slots before
// start cover the rest, since a lower-term batch never lands W or more slots
// past a newer term's first slot (docs/protocol.md "Reading" rule 1).
func (s *Scanner) seedFilter(ctx context.Context, cp Checkpoint, start uint64) error {
	s.filter.Max = cp.MaxTerm
	from := cp.C
	if w := uint64(FenceWindow); start > w && start-w > from {
		from = start - w
	}
	for off := from; off < start; off++ {
		r := readSlot(ctx, s.store, s.cfg.Layout, s.cfg.PChannel, off, s.cfg.GetTimeout)
		if r.err != nil {
			return r.err
		}
		if !r.missing && r.batch.Kind != KindTombstone {
			s.filter.Max = max(s.filter.Max, r.batch.Term)
		}
	}
	return nil
}

// Stats returns the scanner's counters.
func (s *Scanner) Stats() ScannerStats { return s.stats }

// Next returns the next message, waiting at the tail until one is appended
// or ctx ends (then it returns ctx's error).
func (s *Scanner) Next(ctx context.Context) (Delivery, error) {
	if s.cfg.Pause != nil && !s.cfg.IgnorePause {
		if err := s.cfg.Pause.Wait(ctx); err != nil {
			return Delivery{}, err
		}
	}
	for len(s.buf) == 0 {
		var err error
		if s.seg != nil {
			err = s.nextSegment(ctx)
		} else {
			err = s.advance(ctx)
		}
		if err != nil {
			return Delivery{}, err
		}
	}
	d := s.buf[0]
	s.buf = s.buf[1:]
	s.stats.Delivered++
	s.resume = AtID(NextID(d.ID))
	return d, nil
}

// Resume is the position that resumes this scan right after the last
// message Next returned (or at the start, if none).
func (s *Scanner) Resume() Position { return s.resume }

// Close stops read-ahead and any segment read.
func (s *Scanner) Close() {
	s.pf.close()
	if s.seg != nil {
		s.seg.Close()
		s.seg = nil
	}
}

// advance reads the slot at s.offset into buf, or waits at the tail.
func (s *Scanner) advance(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.cfg.Tail != nil && !s.cfg.NoWait {
		// A writer in this process knows whether the slot is acked: wait
		// until it is, instead of probing the store for a slot that is not
		// there yet. It returns at once below the frontier, and with
		// ErrNoWriter when no writer of the pchannel runs here: then the
		// store is probed as below.
		if _, err := s.cfg.Tail.Wait(ctx, s.cfg.PChannel, s.offset); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	var b *Batch
	if s.cfg.Cache != nil {
		if cb, _, ok := s.cfg.Cache.Get(s.cfg.PChannel, s.offset); ok {
			b = cb
			s.stats.CacheHits++
			s.pf.skip()
		}
	}
	if b == nil {
		r := s.pf.nextSlot(ctx)
		s.stats.StoreReads++
		if r.err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("scan %s: %w", s.cfg.PChannel, r.err)
		}
		if r.missing {
			return s.waitTail(ctx)
		}
		b = &r.batch
	}
	s.pollWait, s.atTail = s.cfg.PollMin, false
	off, skip := s.offset, s.skipIdx
	s.offset, s.skipIdx = s.offset+1, 0
	if !s.filter.Observe(b) {
		s.stats.Skipped++
		return nil
	}
	s.stats.Batches++
	for i := range b.Messages {
		m := &b.Messages[i]
		if uint32(i) < skip || !s.keep(m) {
			continue
		}
		s.buf = append(s.buf, Delivery{ID: MessageID{Offset: off, Index: uint32(i)}, Term: b.Term, Message: *m})
	}
	return nil
}

func (s *Scanner) keep(m *Message) bool {
	if !s.types[m.Type] || m.TimeTick < s.cfg.MinTimeTick {
		return false
	}
	return len(s.vchans) == 0 || s.vchans[m.VChannel]
}

// waitTail waits for the slot at s.offset to fill: woken by an in-process
// writer when there is one, else after a bounded backoff before the next
// probe. A missing slot is the tail only if the checkpoint has not passed
// it (docs/protocol.md, Reading rule 3): a flush may have moved the
// checkpoint past it and GC deleted it while we read segments or the slots
// before it; then the scan goes on from segments. A NoWait scanner checks
// this too before it reports ErrTail.
func (s *Scanner) waitTail(ctx context.Context) error {
	if !s.atTail {
		// Checked once per arrival at the tail: the checkpoint passes a
		// slot only once it holds a batch, and GC deletes a slot only
		// below the checkpoint and min_age after it was written, so a
		// slot found empty with the checkpoint at or below it cannot be
		// collected between two probes (PollMax, or a NoWait caller's
		// long poll, is far below min_age).
		cp, _, err := s.cfg.Checkpoints.Read(ctx, s.cfg.PChannel)
		if err != nil {
			return err
		}
		if s.offset < cp.C {
			// Flushed and collected while we were away: read segments,
			// unless a trim passed us meanwhile.
			if err := s.checkTrim(cp, MessageID{Offset: s.offset, Index: s.skipIdx}); err != nil {
				return err
			}
			return s.openSegments(ctx, cp, MessageID{Offset: s.offset, Index: s.skipIdx})
		}
		s.atTail = true
	}
	if s.cfg.NoWait {
		return ErrTail
	}
	if s.cfg.Tail != nil {
		s.stats.TailWaits++
		if _, err := s.cfg.Tail.Wait(ctx, s.cfg.PChannel, s.offset); err == nil {
			return nil
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	s.stats.TailProbes++
	if err := backoff.Sleep(ctx, s.pollWait); err != nil {
		return err
	}
	s.pollWait = min(s.cfg.PollMax, s.pollWait*2)
	return nil
}
