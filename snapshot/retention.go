package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/cas"
	"github.com/cairnlog/cairn/segmentlog"
)

// Policy is a retention policy: what a pchannel or a vchannel keeps. A
// zero field sets no bound; the zero Policy keeps everything. It is a
// plain value.
type Policy struct {
	// MaxAge: messages whose segment file was written longer ago are
	// trimmed (age counts from the flush, so a message lives at most
	// MaxAge plus one flush interval).
	MaxAge time.Duration `json:"max_age,omitempty"`
	// MaxBytes bounds the bytes of segment files held: the oldest files
	// beyond it are trimmed.
	MaxBytes int64 `json:"max_bytes,omitempty"`
}

// IsZero reports whether p bounds nothing.
func (p Policy) IsZero() bool { return p == Policy{} }

// Validate reports a policy that cannot be applied.
func (p Policy) Validate() error {
	if p.MaxAge < 0 || p.MaxBytes < 0 {
		return fmt.Errorf("%w: retention bounds must be ≥ 0", ErrInvalidPolicy)
	}
	return nil
}

// ErrInvalidPolicy: a retention policy with a negative bound.
var ErrInvalidPolicy = errors.New("snapshot: invalid retention policy")

// Policy kinds: what a PolicyRecord applies to.
const (
	PolicyPChannel = "pchannel"
	PolicyVChannel = "vchannel"
)

const policyFormat = 1

// PolicyRecord is the stored retention policy of one pchannel or vchannel,
// at {prefix}/meta/retention/{kind}s/{name}.json, replaced by CAS.
type PolicyRecord struct {
	Format   int    `json:"format"`
	Kind     string `json:"kind"` // PolicyPChannel or PolicyVChannel
	Name     string `json:"name"`
	PChannel string `json:"pchannel"` // the vchannel's binding; Name for a pchannel
	Policy
	Version   uint64    `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
}

// PoliciesPrefix is the prefix of every retention policy record.
func PoliciesPrefix(l segmentlog.Layout) string { return join(l, "meta", "retention") + "/" }

func policyKey(l segmentlog.Layout, kind, name string) string {
	return join(l, "meta", "retention", kind+"s", name+".json")
}

// SetPolicy stores the retention policy of a pchannel (kind
// PolicyPChannel, pchannel == name) or of a vchannel bound to pchannel. A
// zero policy is stored too: it bounds nothing.
func SetPolicy(ctx context.Context, store objstore.Store, l segmentlog.Layout, kind, name, pchannel string, p Policy, now time.Time) (PolicyRecord, error) {
	if kind != PolicyPChannel && kind != PolicyVChannel {
		return PolicyRecord{}, fmt.Errorf("%w: kind %q", ErrInvalidPolicy, kind)
	}
	if err := segmentlog.ValidateName(kind, name); err != nil {
		return PolicyRecord{}, err
	}
	if err := p.Validate(); err != nil {
		return PolicyRecord{}, err
	}
	rec, err := update(ctx, store, policyKey(l, kind, name), TrimTimeout, func(cur PolicyRecord, exists bool) (PolicyRecord, error) {
		if exists && cur.Policy == p && cur.PChannel == pchannel {
			return cur, cas.ErrUnchanged
		}
		return PolicyRecord{Format: policyFormat, Kind: kind, Name: name, PChannel: pchannel, Policy: p,
			Version: cur.Version + 1, UpdatedAt: now.UTC()}, nil
	})
	if err != nil {
		return PolicyRecord{}, fmt.Errorf("set retention of %s %s: %w", kind, name, err)
	}
	return rec, nil
}

// ReadPolicy returns the retention policy of a pchannel or vchannel; the
// zero Policy when none was set.
func ReadPolicy(ctx context.Context, store objstore.Store, l segmentlog.Layout, kind, name string) (Policy, error) {
	rec, _, ok, err := readRecord[PolicyRecord](ctx, store, policyKey(l, kind, name), TrimTimeout)
	if err != nil || !ok {
		return Policy{}, err
	}
	return rec.Policy, nil
}

// Held is what a pchannel or vchannel holds under its trim points: the
// earliest readable position and the bytes of the segment files at or
// above it (the WAL above the checkpoint not counted).
type Held struct {
	Earliest segmentlog.MessageID
	Bytes    int64
	Files    int
}

// HeldBy sums what cp's manifest holds for vchannel (all of the pchannel
// when vchannel is "") above the trim points (the pchannel's, and trim,
// the vchannel's own).
func HeldBy(cp segmentlog.Checkpoint, vchannel string, trim segmentlog.MessageID) Held {
	h := Held{Earliest: cp.Trim}
	if h.Earliest.Less(trim) {
		h.Earliest = trim
	}
	for _, ref := range cp.Segments {
		if (vchannel == "" || ref.VChannel == vchannel) && !whollyTrimmed(ref, h.Earliest) {
			h.Bytes += ref.Bytes
			h.Files++
		}
	}
	return h
}

// retentionPoint is the trim point policy p asks for over refs (the
// segment files of one pchannel or vchannel, written at the times in
// written) at now: right after the newest file written before now −
// MaxAge (offsets grow with append time, so every message at or below its
// last offset is older), and right after the newest file that no longer
// fits in MaxBytes counting from the newest. ok=false: nothing to trim.
func retentionPoint(refs []segmentlog.SegmentRef, written map[string]time.Time, p Policy, now time.Time) (segmentlog.MessageID, bool) {
	var off uint64
	ok := false
	cut := func(ref segmentlog.SegmentRef) {
		if !ok || ref.LastOffset+1 > off {
			off, ok = ref.LastOffset+1, true
		}
	}
	if p.MaxAge > 0 {
		for _, ref := range refs {
			if t, known := written[ref.Key]; known && now.Sub(t) > p.MaxAge {
				cut(ref)
			}
		}
	}
	if p.MaxBytes > 0 {
		byLast := slices.Clone(refs)
		slices.SortFunc(byLast, func(a, b segmentlog.SegmentRef) int { return -cmpUint(a.LastOffset, b.LastOffset) })
		var sum int64
		for _, ref := range byLast {
			sum += ref.Bytes
			if sum > p.MaxBytes {
				cut(ref)
				break
			}
		}
	}
	return segmentlog.MessageID{Offset: off}, ok
}

// RetentionConfig configures a Retention. Zero fields take the documented
// defaults.
type RetentionConfig struct {
	Layout segmentlog.Layout
	// TrimVChannel trims a vchannel (the coordinator's Registry.Trim);
	// without it vchannel policies are skipped.
	TrimVChannel func(ctx context.Context, vchannel string, before segmentlog.MessageID) error
	// VChannelTrim returns a vchannel's own trim point (zero if none);
	// without it vchannels count as untrimmed.
	VChannelTrim func(ctx context.Context, vchannel string) (segmentlog.MessageID, error)
	Timeout      time.Duration    // one store request; default 5 s
	Now          func() time.Time // default time.Now
	Logger       *slog.Logger     // default slog.Default()
}

// Retention applies the stored retention policies by trimming (it never
// deletes anything itself: GC does, after the retirement grace, and never
// what a snapshot pins). Safe for concurrent use.
type Retention struct {
	cfg   RetentionConfig
	store objstore.Store

	checkpoints *segmentlog.CheckpointCache // the records the last Apply read
}

// NewRetention returns a Retention over store.
func NewRetention(cfg RetentionConfig, store objstore.Store) *Retention {
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Retention{cfg: cfg, store: store, checkpoints: segmentlog.NewCheckpointCache(store, cfg.Layout)}
}

// RetentionResult says what one Apply did.
type RetentionResult struct {
	Policies int // policy records read
	Trimmed  int // trims that moved a point
}

// Apply reads every policy record and trims each pchannel and vchannel to
// its policy at now: one LIST of the policies, then per policy a
// checkpoint GET (conditional: an unchanged record sends no body), a LIST of the segment directories involved (for
// MaxAge) and at most one CAS. It goes on past a policy that fails and
// returns the errors joined.
func (r *Retention) Apply(ctx context.Context) (RetentionResult, error) {
	var res RetentionResult
	recs, err := listRecords[PolicyRecord](ctx, r.store, PoliciesPrefix(r.cfg.Layout), r.cfg.Timeout)
	if err != nil {
		return res, fmt.Errorf("retention: %w", err)
	}
	res.Policies = len(recs)
	var errs []error
	for _, rec := range recs {
		moved, err := r.apply(ctx, rec)
		if err != nil {
			errs = append(errs, fmt.Errorf("retention of %s %s: %w", rec.Kind, rec.Name, err))
		}
		if moved {
			res.Trimmed++
		}
	}
	return res, errors.Join(errs...)
}

func (r *Retention) apply(ctx context.Context, rec PolicyRecord) (bool, error) {
	if rec.Policy.IsZero() || (rec.Kind == PolicyVChannel && r.cfg.TrimVChannel == nil) {
		return false, nil
	}
	cp, _, err := readCheckpoint(ctx, r.checkpoints, rec.PChannel, r.cfg.Timeout)
	if err != nil {
		return false, err
	}
	floor := cp.Trim
	var refs []segmentlog.SegmentRef
	dirs := map[string]bool{}
	for _, ref := range cp.Segments {
		if rec.Kind == PolicyVChannel && ref.VChannel != rec.Name {
			continue
		}
		refs = append(refs, ref)
		dirs[segmentDir(r.cfg.Layout, rec.PChannel, ref.VChannel)] = true
	}
	if rec.Kind == PolicyVChannel && r.cfg.VChannelTrim != nil {
		vt, err := r.cfg.VChannelTrim(ctx, rec.Name)
		if err != nil {
			return false, err
		}
		if floor.Less(vt) {
			floor = vt
		}
	}
	refs = slices.DeleteFunc(refs, func(ref segmentlog.SegmentRef) bool { return whollyTrimmed(ref, floor) })
	written := map[string]time.Time{}
	if rec.MaxAge > 0 {
		for _, dir := range slices.Sorted(maps.Keys(dirs)) {
			err := retry(ctx, func(context.Context) error {
				return r.store.List(ctx, dir, "", func(a objstore.Attrs) error {
					written[a.Key] = a.LastModified
					return nil
				})
			}, r.cfg.Timeout)
			if err != nil {
				return false, err
			}
		}
	}
	point, ok := retentionPoint(refs, written, rec.Policy, r.cfg.Now())
	if !ok || !floor.Less(point) {
		return false, nil
	}
	if rec.Kind == PolicyVChannel {
		err = r.cfg.TrimVChannel(ctx, rec.Name, point)
	} else {
		_, err = Trim(ctx, r.store, r.cfg.Layout, rec.Name, point, r.cfg.Now())
	}
	if err != nil {
		return false, err
	}
	r.cfg.Logger.Info("retention trimmed", "kind", rec.Kind, "name", rec.Name, "before", point, "max_age", rec.MaxAge, "max_bytes", rec.MaxBytes)
	return true, nil
}
