package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/cas"
	"github.com/cairnlog/cairn/segmentlog"
)

// CompactConfig configures a Compactor. Zero fields take the documented
// defaults.
type CompactConfig struct {
	PChannel string // required
	Layout   segmentlog.Layout
	// TargetBytes bounds a merged file: the files of one run hold at most
	// this many bytes together. Default 64 MiB.
	TargetBytes int64
	// MinFiles is the fewest files one merge takes. Default 8.
	MinFiles int
	// MaxFiles is the most files one merge takes (it bounds the planning
	// work on a manifest of many tiny files). Default 1024.
	MaxFiles int
	// MinRefs: Compact leaves a manifest of fewer references alone.
	// Default 64.
	MinRefs int
	// MaxRuns bounds the merges one Compact carries out, each committed by
	// a checkpoint CAS of its own. Default 16.
	MaxRuns int
	// Interval is how often Run looks at the manifest. Default 1 min.
	Interval time.Duration
	// Flushes, if set, counts the flush rounds committed on the pchannel
	// (in `cairn serve`, by the flusher in the same process): Run skips a
	// look, sending no request, while the count is what it was at the
	// previous look, since only a flush adds files to the manifest — but
	// looks at least every idleLooks Intervals (10 min by default), for
	// flushes the count does not see (`cairn pchannel flush`, another
	// process). Optional: without it every look reads the checkpoint.
	Flushes func() uint64
	// GetTimeout bounds one checkpoint GET or CAS attempt. Default 1 s.
	GetTimeout time.Duration
	// PutTimeout bounds one segment GET or PUT attempt. Default 30 s.
	PutTimeout time.Duration
	// CommitWithin: a merged file is committed to the manifest only this
	// soon after its PUT began; later, the merge is abandoned and the file
	// left to GC, which deletes an unnamed file once it is GCConfig.OrphanAge
	// old — possibly just before a late commit would name it. Keep it well
	// below the GCs' OrphanAge. Default DefaultCommitWithin (20 min).
	CommitWithin time.Duration

	Now       func() time.Time // default time.Now; stamps RetiredAt
	NewID     func() string    // compaction IDs; default UUIDv7
	Logger    *slog.Logger     // default slog.Default()
	OnCompact func(Compaction) // optional: called after every committed Compact (metrics, tests)
}

func (c *CompactConfig) withDefaults() {
	if c.TargetBytes == 0 {
		c.TargetBytes = 64 << 20
	}
	if c.MinFiles == 0 {
		c.MinFiles = 8
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = 1024
	}
	if c.MinRefs == 0 {
		c.MinRefs = 64
	}
	if c.MaxRuns == 0 {
		c.MaxRuns = 16
	}
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.GetTimeout == 0 {
		c.GetTimeout = time.Second
	}
	if c.PutTimeout == 0 {
		c.PutTimeout = 30 * time.Second
	}
	if c.CommitWithin == 0 {
		c.CommitWithin = DefaultCommitWithin
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewID == nil {
		c.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration a Compactor cannot run with.
func (c *CompactConfig) Validate() error {
	if err := segmentlog.ValidateName("pchannel", c.PChannel); err != nil {
		return err
	}
	switch {
	case c.TargetBytes < 1:
		return errors.New("snapshot: compaction target bytes must be ≥ 1")
	case c.MinFiles < 2 || c.MaxFiles < c.MinFiles:
		return errors.New("snapshot: compaction needs 2 ≤ min files ≤ max files")
	case c.MinRefs < 0 || c.MaxRuns < 1:
		return errors.New("snapshot: compaction min refs must be ≥ 0 and max runs ≥ 1")
	case c.Interval <= 0 || c.GetTimeout <= 0 || c.PutTimeout <= 0 || c.CommitWithin <= 0:
		return errors.New("snapshot: compaction interval, timeouts and commit deadline must be > 0")
	}
	return nil
}

// Merge is one run of a vchannel's segment files replaced by one merged
// file.
type Merge struct {
	Merged   segmentlog.SegmentRef
	Replaced []segmentlog.SegmentRef // in manifest order
}

// Compaction says what one Compact did.
type Compaction struct {
	ID         string  // the compaction ID in the merged files' keys
	Merges     []Merge // committed
	Abandoned  int     // runs written but not committed: a flush, GC or another compactor changed them first (their files are orphans)
	RefsBefore int     // manifest references before
	RefsAfter  int     // and after (of the record Compact left or found)
	Version    uint64  // checkpoint version written, 0 if none
}

// Compactor keeps one pchannel's manifest bounded: it merges runs of a
// vchannel's consecutive small segment files into one file and replaces
// them in the checkpoint by CAS, after recording them in a retired list
// (RetiredList), so GC keeps them for OrphanAge more for readers that hold
// an older manifest (see the package documentation, "Compaction"). It
// never moves C nor changes anything but the manifest, Version and
// UpdatedAt. Any number of Compactors may run with flushers, GCs and each
// other: the checkpoint CAS is the only synchronisation. Safe for
// concurrent use.
type Compactor struct {
	cfg    CompactConfig
	store  objstore.Store
	reader *SegmentReader
	log    *slog.Logger
	// checkpoints keeps the record the last look read: an idle look
	// downloads nothing.
	checkpoints *segmentlog.CheckpointCache
}

// NewCompactor returns a Compactor over store.
func NewCompactor(cfg CompactConfig, store objstore.Store) (*Compactor, error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Compactor{cfg: cfg, store: store, reader: NewSegmentReader(store, cfg.PutTimeout), log: cfg.Logger,
		checkpoints: segmentlog.NewCheckpointCache(store, cfg.Layout)}, nil
}

// Compact reads the checkpoint, plans up to MaxRuns merges (planRuns), and
// carries them out one at a time: it writes the run's merged file, then
// replaces the run in the checkpoint by CAS at once, so that a merged file
// waits for its commit no longer than one merge takes (GC deletes an
// unnamed file once it is OrphanAge old). A lost race re-reads the record
// and applies the merge again if every file of the run is still in the
// manifest; otherwise the merge is abandoned and its file is an orphan. An
// unknown outcome is settled by reading the record back and looking for
// the merged key, never by a blind resend. A manifest below MinRefs, or
// with nothing to merge, is left alone (a zero Version).
func (c *Compactor) Compact(ctx context.Context) (Compaction, error) {
	p := c.cfg.PChannel
	cp, _, err := readCheckpoint(ctx, c.checkpoints, p, c.cfg.GetTimeout)
	if err != nil {
		return Compaction{}, fmt.Errorf("compact %s: %w", p, err)
	}
	res := Compaction{ID: c.cfg.NewID(), RefsBefore: len(cp.Segments), RefsAfter: len(cp.Segments)}
	if len(cp.Segments) < c.cfg.MinRefs {
		return res, nil
	}
	for i, run := range planRuns(cp, c.cfg.Layout, c.cfg.TargetBytes, c.cfg.MinFiles, c.cfg.MaxFiles, c.cfg.MaxRuns) {
		written := time.Now() // real time: it bounds the time from PUT to CAS
		merged, err := c.merge(ctx, run, res.ID)
		if errors.Is(err, ErrMissingSegment) && c.stale(ctx, run) {
			res.Abandoned++ // another compactor merged it, and GC collected the file since
			continue
		}
		if err != nil {
			return res, fmt.Errorf("compact %s: %w", p, err)
		}
		m := Merge{Merged: merged, Replaced: run}
		stored, err := c.commit(ctx, m, fmt.Sprintf("%s-%d", res.ID, i), written.Add(c.cfg.CommitWithin))
		if err != nil {
			return res, fmt.Errorf("compact %s: %w", p, err)
		}
		res.RefsAfter = len(stored.Segments)
		if !slices.ContainsFunc(stored.Segments, func(r segmentlog.SegmentRef) bool { return r.Key == merged.Key }) {
			res.Abandoned++
			continue
		}
		res.Merges = append(res.Merges, m)
		res.Version = stored.Version
	}
	if len(res.Merges) > 0 && c.cfg.OnCompact != nil {
		c.cfg.OnCompact(res)
	}
	c.log.Debug("compacted", "pchannel", p, "merges", len(res.Merges), "abandoned", res.Abandoned, "refs_before", res.RefsBefore, "refs_after", res.RefsAfter)
	return res, nil
}

// stale reports whether the checkpoint no longer names every file of run:
// a missing file of a stale plan is not a broken manifest.
func (c *Compactor) stale(ctx context.Context, run []segmentlog.SegmentRef) bool {
	cp, _, err := readCheckpoint(ctx, c.checkpoints, c.cfg.PChannel, c.cfg.GetTimeout)
	return err == nil && len(applicable(cp, []Merge{{Replaced: run}})) == 0
}

// commit replaces m's run by its merged file in the checkpoint and returns
// the record as stored (without the merged file if the merge was
// abandoned). First it writes the run's keys as a retired list (id in its
// key), which keeps them for readers of older manifests from the moment
// the CAS may take them out (docs/protocol.md "Flush" rule 8); an
// abandoned merge leaves its list to expire. No CAS goes out after
// deadline: by then GC may take the merged file, unnamed so far, for an
// orphan (docs/protocol.md "Flush" rules 3 and 9).
func (c *Compactor) commit(ctx context.Context, m Merge, id string, deadline time.Time) (segmentlog.Checkpoint, error) {
	now := c.cfg.Now().UTC()
	if _, err := writeRetiredList(ctx, c.store, c.cfg.Layout, c.cfg.PChannel, segmentKeys(m.Replaced), now, id, c.cfg.PutTimeout); err != nil {
		return segmentlog.Checkpoint{}, err
	}
	// Resends of one CAS stop at the deadline too.
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	stored, err := update(dctx, c.store, c.cfg.Layout.Checkpoint(c.cfg.PChannel), c.cfg.GetTimeout, func(cur segmentlog.Checkpoint, exists bool) (segmentlog.Checkpoint, error) {
		if !exists {
			return cur, cas.ErrUnchanged
		}
		todo := applicable(cur, []Merge{m})
		if len(todo) == 0 {
			return cur, cas.ErrUnchanged // landed (a lost reply) or abandoned
		}
		if time.Now().After(deadline) {
			return cur, cas.ErrUnchanged
		}
		return applyMerges(cur, todo, now), nil
	})
	if err != nil && dctx.Err() != nil && ctx.Err() == nil {
		// The deadline cut the CAS short; an attempt sent before it may
		// have landed. The record tells (Compact looks for the merged file).
		stored, _, err = readCheckpoint(ctx, c.checkpoints, c.cfg.PChannel, c.cfg.GetTimeout)
	}
	if err != nil {
		return stored, fmt.Errorf("checkpoint CAS: %w", err)
	}
	if !slices.ContainsFunc(stored.Segments, func(r segmentlog.SegmentRef) bool { return r.Key == m.Merged.Key }) && time.Now().After(deadline) {
		c.log.Warn("merge abandoned: its file was written too long ago to commit safely", "pchannel", c.cfg.PChannel, "file", m.Merged.Key)
	}
	return stored, nil
}

// idleLooks: with CompactConfig.Flushes, Run looks at least once every
// idleLooks Intervals.
const idleLooks = 10

// Run compacts every Interval until ctx ends (then it returns ctx's
// error), skipping looks while Flushes says nothing was flushed since a
// look that found nothing to do. Errors of one look are logged and the
// next look tries again.
func (c *Compactor) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	var seen uint64
	looked, skipped := false, 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if c.cfg.Flushes != nil {
			n := c.cfg.Flushes()
			if looked && n == seen && skipped < idleLooks-1 {
				skipped++
				continue
			}
			seen, looked, skipped = n, true, 0
		}
		done, err := c.Compact(ctx)
		if err != nil || len(done.Merges) > 0 || done.Abandoned > 0 {
			looked = false // look again next time: a failure, or more may be left to merge
		}
		if err != nil && ctx.Err() == nil {
			c.log.Warn("compaction failed; trying again", "pchannel", c.cfg.PChannel, "err", err)
		}
	}
}

// merge reads the run's files, checks that they hold what the manifest
// says, and writes them as one file under a key of this compaction.
func (c *Compactor) merge(ctx context.Context, run []segmentlog.SegmentRef, id string) (segmentlog.SegmentRef, error) {
	var rows []segmentlog.Delivery
	for _, ref := range run {
		got, err := c.reader.load(ctx, ref)
		if err != nil {
			return segmentlog.SegmentRef{}, err
		}
		if err := checkLoaded(ref, got, rows); err != nil {
			return segmentlog.SegmentRef{}, err
		}
		rows = append(rows, got...)
	}
	v := run[0].VChannel
	data, crc, err := encodeSegment(c.cfg.PChannel, v, rows)
	if err != nil {
		return segmentlog.SegmentRef{}, err
	}
	first, last := rows[0].ID.Offset, rows[len(rows)-1].ID.Offset
	key := SegmentKey(c.cfg.Layout, c.cfg.PChannel, v, first, last, id)
	if err := putImmutable(ctx, c.store, key, data, map[string]string{crcMeta: strconv.FormatUint(uint64(crc), 10)}, c.cfg.PutTimeout); err != nil {
		return segmentlog.SegmentRef{}, fmt.Errorf("write merged segment: %w", err)
	}
	return segmentlog.SegmentRef{VChannel: v, Key: key, FirstOffset: first, LastOffset: last, Messages: int64(len(rows)), Bytes: int64(len(data))}, nil
}

// checkLoaded checks a decoded file against its reference and the rows
// merged before it: its vchannel, message count and offsets, and ID order
// across files. A mismatch is corruption; nothing is merged.
func checkLoaded(ref segmentlog.SegmentRef, got, before []segmentlog.Delivery) error {
	switch {
	case int64(len(got)) != ref.Messages || len(got) == 0:
		return fmt.Errorf("segment %s: %w: %d messages, the manifest says %d", ref.Key, ErrCorrupt, len(got), ref.Messages)
	case got[0].ID.Offset != ref.FirstOffset || got[len(got)-1].ID.Offset != ref.LastOffset:
		return fmt.Errorf("segment %s: %w: offsets %d-%d, the manifest says %d-%d", ref.Key, ErrCorrupt, got[0].ID.Offset, got[len(got)-1].ID.Offset, ref.FirstOffset, ref.LastOffset)
	case got[0].VChannel != ref.VChannel:
		return fmt.Errorf("segment %s: %w: vchannel %q, the manifest says %q", ref.Key, ErrCorrupt, got[0].VChannel, ref.VChannel)
	case len(before) > 0 && !before[len(before)-1].ID.Less(got[0].ID):
		return fmt.Errorf("segment %s: %w: message %v after %v", ref.Key, ErrCorrupt, got[0].ID, before[len(before)-1].ID)
	}
	return nil
}

// planRuns chooses the runs to merge in cp's manifest, at most maxRuns. A
// run is a sequence of one vchannel's references that are consecutive in
// the manifest's order of that vchannel, ascending and not overlapping,
// with minFiles to maxFiles files of at most target bytes together, whose
// largest file is no larger than the others together. That last rule
// makes merging size-tiered: a file is rewritten only into one at least
// twice its size, so each byte is rewritten at most log2(target/smallest)
// times, and a vchannel keeps about minFiles files per size tier.
//
// Never in a run: the files of the checkpoint's current FlushID (a flusher
// whose CAS reply was lost recognises its round by them, holdsFlush), and
// files wholly below the trim point (RetireTrimmed's), and
// files not in this pchannel's own segment directory for their vchannel
// (files the manifest did not get from this pchannel's flushes or
// compactions are not this compactor's to rewrite). Either ends a run.
func planRuns(cp segmentlog.Checkpoint, l segmentlog.Layout, target int64, minFiles, maxFiles, maxRuns int) [][]segmentlog.SegmentRef {
	var order []string
	byV := make(map[string][]segmentlog.SegmentRef)
	for _, ref := range cp.Segments {
		if _, ok := byV[ref.VChannel]; !ok {
			order = append(order, ref.VChannel)
		}
		byV[ref.VChannel] = append(byV[ref.VChannel], ref)
	}
	var runs [][]segmentlog.SegmentRef
	for _, v := range order {
		refs := byV[v]
		dir := segmentDir(l, cp.PChannel, v)
		eligible := func(i int) bool {
			id := flushIDOf(refs[i].Key)
			return id != "" && id != cp.FlushID && strings.HasPrefix(refs[i].Key, dir) && refs[i].Bytes > 0 &&
				!whollyTrimmed(refs[i], cp.Trim) // GC retires it; a merge would keep trimmed bytes alive
		}
		for i := 0; i < len(refs) && len(runs) < maxRuns; {
			best, sum, largest := -1, int64(0), int64(0)
			for k := i; k < len(refs) && k-i < maxFiles && eligible(k); k++ {
				if k > i && refs[k].FirstOffset <= refs[k-1].LastOffset {
					break
				}
				if sum+refs[k].Bytes > target {
					break
				}
				sum += refs[k].Bytes
				largest = max(largest, refs[k].Bytes)
				if k-i+1 >= minFiles && largest <= sum-largest {
					best = k
				}
			}
			if best < 0 {
				i++
				continue
			}
			runs = append(runs, slices.Clone(refs[i:best+1]))
			i = best + 1
		}
	}
	return runs
}

// applicable returns the merges whose replaced files are all still in
// cur's manifest and whose merged file is not (yet) in it.
func applicable(cur segmentlog.Checkpoint, merges []Merge) []Merge {
	in := make(map[string]bool, len(cur.Segments))
	for _, r := range cur.Segments {
		in[r.Key] = true
	}
	var out []Merge
	for _, m := range merges {
		if in[m.Merged.Key] {
			continue
		}
		if !slices.ContainsFunc(m.Replaced, func(r segmentlog.SegmentRef) bool { return !in[r.Key] }) {
			out = append(out, m)
		}
	}
	return out
}

// applyMerges returns cur with each merge's files replaced by its merged
// file, at the position of the first (the files are in the merge's
// retired list, not in the record). Everything else (C, MaxTerm,
// TermChanges, LastTimeTick, Dedup, DedupState, Retired, Trim, FlushID)
// stays; Version grows by one and UpdatedAt is now.
func applyMerges(cur segmentlog.Checkpoint, merges []Merge, now time.Time) segmentlog.Checkpoint {
	first := make(map[string]segmentlog.SegmentRef)
	gone := make(map[string]bool)
	next := cur
	for _, m := range merges {
		first[m.Replaced[0].Key] = m.Merged
		for _, r := range m.Replaced {
			gone[r.Key] = true
		}
	}
	next.Segments = make([]segmentlog.SegmentRef, 0, len(cur.Segments))
	for _, r := range cur.Segments {
		if m, ok := first[r.Key]; ok {
			next.Segments = append(next.Segments, m)
		} else if !gone[r.Key] {
			next.Segments = append(next.Segments, r)
		}
	}
	next.Version, next.UpdatedAt = cur.Version+1, now
	return next
}
